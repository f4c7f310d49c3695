//! Task identity: one enum for every task family, parsed once from its command-line name.

use crate::generative::GenTask;
use crate::TaskError;
use std::fmt;
use std::str::FromStr;

/// Every task `tasklm train`, `eval`, `predict` and the server know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Instruction SFT on {prompt, completion} (or Alpaca) JSONL; loss on completions.
    Sft,
    /// Conversations ({"messages": [{role, content}, ...]} JSONL); loss on assistant turns.
    Chat,
    /// Text classification: an encoder's head, or a decoder completing a label word.
    Classify,
    /// NLI (premise, hypothesis, 3 labels): an encoder's head, or a decoder's label word.
    Nli,
    /// NER: an encoder tags each word (BIO); entities with character offsets.
    Ner,
    /// Extractive QA: an encoder's start/end span head over context + question.
    Qa,
    /// Generative QA: SFT on the answer.
    Genqa,
    /// Summarization: SFT on the summary; ROUGE.
    Summarize,
    /// Translation: SFT on the target; BLEU, chrF.
    Translate,
    /// Code: SFT on the solution; pass@k by running the tests.
    Code,
    /// Chain-of-thought reasoning: SFT on the worked answer; final-number match.
    Reasoning,
    /// Retrieval-augmented generation: passages from an index in the prompt; SQuAD EM/F1 and
    /// retrieval recall@k.
    Rag,
    /// A sentence encoder for search: in-batch negatives over query/positive pairs.
    Retrieval,
    /// Image classification: a ViT's `[CLS]` head over labelled images.
    ImageClassify,
    /// Visual question answering: a LLaVA (vision tower, projector, decoder) answers questions
    /// about images.
    Vqa,
}

impl TaskKind {
    pub const ALL: [TaskKind; 15] = [
        TaskKind::Sft,
        TaskKind::Chat,
        TaskKind::Classify,
        TaskKind::Nli,
        TaskKind::Ner,
        TaskKind::Qa,
        TaskKind::Genqa,
        TaskKind::Summarize,
        TaskKind::Translate,
        TaskKind::Code,
        TaskKind::Reasoning,
        TaskKind::Rag,
        TaskKind::Retrieval,
        TaskKind::ImageClassify,
        TaskKind::Vqa,
    ];

    /// The name on the command line (`--task NAME`), in `tasklm.json` and in server paths.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Sft => "sft",
            TaskKind::Chat => "chat",
            TaskKind::Classify => "classify",
            TaskKind::Nli => "nli",
            TaskKind::Ner => "ner",
            TaskKind::Qa => "qa",
            TaskKind::Genqa => "genqa",
            TaskKind::Summarize => "summarize",
            TaskKind::Translate => "translate",
            TaskKind::Code => "code",
            TaskKind::Reasoning => "reasoning",
            TaskKind::Rag => "rag",
            TaskKind::Retrieval => "retrieval",
            TaskKind::ImageClassify => "image-classify",
            TaskKind::Vqa => "vqa",
        }
    }

    /// Every valid name, comma-separated (for help and error messages).
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// The generative task this is (SFT on a target, scored on generations), if any.
    pub fn generative(self) -> Option<GenTask> {
        GenTask::ALL.into_iter().find(|g| g.kind() == self)
    }

    /// Classification with a label set (classify, nli).
    pub fn is_label_task(self) -> bool {
        matches!(self, TaskKind::Classify | TaskKind::Nli)
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TaskKind {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, TaskError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| TaskError::UnknownTask {
                name: s.to_string(),
                valid: Self::names(),
            })
    }
}

/// Stored by name (`"nli"`), as `tasklm.json` has it.
impl serde::Serialize for TaskKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for TaskKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_a_wrong_one_lists_them_all() {
        for k in TaskKind::ALL {
            assert_eq!(k.name().parse::<TaskKind>().ok(), Some(k));
        }
        let err = "classfy".parse::<TaskKind>().err().map(|e| e.to_string());
        let msg = err.unwrap_or_default();
        assert!(msg.contains("`classfy`"), "{msg}");
        for k in TaskKind::ALL {
            assert!(msg.contains(k.name()), "{msg} lacks {k}");
        }
    }

    #[test]
    fn generative_tasks_map_to_their_family() {
        let gen: Vec<TaskKind> = TaskKind::ALL
            .into_iter()
            .filter(|k| k.generative().is_some())
            .collect();
        assert_eq!(
            gen,
            [
                TaskKind::Genqa,
                TaskKind::Summarize,
                TaskKind::Translate,
                TaskKind::Code,
                TaskKind::Reasoning
            ]
        );
        assert_eq!(
            TaskKind::Translate.generative().map(GenTask::name),
            Some("translate")
        );
    }
}
