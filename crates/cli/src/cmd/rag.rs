//! `tasklm rag`: answer questions from an index with a generator, printing each answer with its
//! citations (the passages in the prompt, with document ids and character spans); and the
//! retrieval flags `eval --task rag` shares.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tasklm_tasks::rag::{Answer, Ask, ContextSource, RagOptions, RagPredictor, DEFAULT_PASSAGES};

/// Where the passages come from and how many.
#[derive(Args, Clone, Debug)]
pub struct RagFlags {
    /// rag: the index to retrieve from (`tasklm index build`): a directory, or a
    /// `postgres://` URL.
    #[arg(long)]
    pub index: Option<String>,
    /// rag: passages put into the prompt.
    #[arg(long = "passages", default_value_t = DEFAULT_PASSAGES)]
    pub passages: usize,
    /// rag: search mode: bm25, dense or hybrid (BM25 and dense by relative score fusion).
    #[arg(long, default_value = "hybrid", value_parser = parse_mode)]
    pub mode: tasklm_rag::Mode,
    /// rag: the passages: retrieved (from --index), none (closed-book) or gold (the
    /// question's own paragraph, SQuAD `context`).
    #[arg(long, default_value = "retrieved", value_parser = parse_context)]
    pub context: ContextSource,
    /// rag: the embedding model [default: the one the index was built with].
    #[arg(long)]
    pub embedder: Option<String>,
}

fn parse_mode(s: &str) -> Result<tasklm_rag::Mode, String> {
    s.parse().map_err(|e: tasklm_rag::RagError| e.to_string())
}

fn parse_context(s: &str) -> Result<ContextSource, String> {
    s.parse()
        .map_err(|e: tasklm_tasks::TaskError| e.to_string())
}

impl RagFlags {
    pub fn options(&self) -> RagOptions {
        RagOptions {
            index: self.index.clone(),
            k: self.passages,
            mode: self.mode,
            context: self.context,
            embedder: self.embedder.clone(),
        }
    }
}

#[derive(Args)]
pub struct RagArgs {
    /// The generator: catalog name, Hugging Face directory (a `--task genqa` fine-tune gets
    /// its own prompt), or .gguf file.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    /// One question.
    #[arg(
        long,
        conflicts_with = "questions",
        required_unless_present = "questions"
    )]
    pub question: Option<String>,
    /// JSONL {"id", "question"[, "context"]}: one JSON line out per question.
    #[arg(long)]
    pub questions: Option<PathBuf>,
    #[command(flatten)]
    pub rag: RagFlags,
    /// The prompt, with {question} and {passages} (numbered, titled) or {context} (texts
    /// alone) [default: answer only from the passages].
    #[arg(long)]
    pub prompt_template: Option<String>,
    /// Tokens generated per answer (it ends at a line end or EOS before that).
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    /// Prompts generated together.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Print {"question", "answer", "citations"} as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print each prompt on stderr.
    #[arg(long)]
    pub show_prompt: bool,
    /// Print per-question latency to stderr at the end as JSON: p50/p99 of retrieval
    /// (embedding the question and searching), of generation, and of the whole answer. A
    /// question's times are its batch's (what it waited for): use --batch-size 1 for
    /// one-question-at-a-time latency.
    #[arg(long)]
    pub latency: bool,
}

pub fn run(a: RagArgs) -> Result<()> {
    if a.rag.context == ContextSource::Retrieved && a.rag.index.is_none() {
        bail!("give --index DIR (tasklm index build), or --context none for a closed-book answer");
    }
    let mut p = RagPredictor::load(
        &a.model,
        &a.rag.options(),
        a.prompt_template.as_deref(),
        true,
    )?;
    p.sampling.max_new_tokens = a.max_new_tokens;
    let mut records: Vec<(Value, String, String)> = Vec::new();
    if let Some(q) = &a.question {
        records.push((Value::Null, q.clone(), String::new()));
    } else if let Some(path) = a.questions.as_deref() {
        super::input::for_each_record(Some(path), |v, line, name| {
            let Some(q) = v.get("question").and_then(Value::as_str) else {
                bail!(
                    "{name}:{line}: expected an object with a string \"question\" (and an \"id\")"
                );
            };
            let context = v.get("context").and_then(Value::as_str).unwrap_or("");
            let id = v.get("id").cloned().unwrap_or(json!(line));
            records.push((id, q.to_string(), context.to_string()));
            Ok(())
        })?;
    }
    let mut out = std::io::stdout().lock();
    let mut latency = super::latency::Latency::default();
    for chunk in records.chunks(a.batch_size.max(1)) {
        let asks: Vec<Ask> = chunk
            .iter()
            .map(|(_, q, c)| Ask {
                question: q,
                context: c,
                doc_id: None,
            })
            .collect();
        let t0 = Instant::now();
        let cited = p.passages(&asks)?;
        let retrieve_s = t0.elapsed().as_secs_f64();
        if a.show_prompt {
            for (ask, cited) in asks.iter().zip(&cited) {
                eprintln!("{}\n", p.prompt(ask.question, cited));
            }
        }
        let t1 = Instant::now();
        let answers = p.answer_from(&asks, cited, a.batch_size, &mut |_| {})?;
        let generate_s = t1.elapsed().as_secs_f64();
        for _ in &asks {
            latency.record("retrieve", retrieve_s);
            latency.record("generate", generate_s);
            latency.record("question", retrieve_s + generate_s);
        }
        for ((id, q, _), ans) in chunk.iter().zip(answers) {
            print_answer(&mut out, a.json, id, q, &ans).context("writing the answer")?;
        }
    }
    latency.report(a.latency);
    Ok(())
}

fn print_answer(
    out: &mut impl Write,
    as_json: bool,
    id: &Value,
    q: &str,
    a: &Answer,
) -> Result<()> {
    if as_json {
        let mut v = json!({"question": q, "answer": a.answer, "citations": a.citations});
        if !id.is_null() {
            v["id"] = id.clone();
        }
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "{}", a.answer)?;
    for c in &a.citations {
        let score = c.score.map_or(String::new(), |s| format!(", score {s:.4}"));
        writeln!(
            out,
            "  [{}] {} chars {}..{}{score}",
            c.n, c.doc_id, c.start, c.end
        )?;
    }
    out.flush()?;
    Ok(())
}
