//! Chat (task family 2): conversations rendered through one template for training (loss on
//! assistant turns) and serving (multi-turn replies that keep the history inside the context).
//! The template a model was trained with is saved in its directory (`tokenizer_config.json`'s
//! `chat_template`, and `tasklm.json`'s `end_of_turn`), so every later use renders alike.

use crate::common::lm_runner::{
    default_max_seq_len, encode_each, fit_lm, load_for_training, report_encoding, EncodedFile,
    TrainOutcome,
};
use crate::common::provenance::data_section;
use crate::common::tasklm_json::model_meta;
use crate::{
    EvalJob, Notice, PredictJob, Predictor, Report, Result, TaskError, TaskFamily, TrainJob,
};
use candle_core::{DType, Device};
use serde_json::{json, Value};
use std::path::Path;
use tasklm_data::chat::drop_oldest_turns;
use tasklm_data::{encode_chat, read_chat_jsonl, ChatRecord, Truncation};
use tasklm_generate::{generate, Generation, SamplingParams};
use tasklm_hub::{load_checkpoint, LoadedDecoder};
use tasklm_text::{BuiltinTemplate, ChatMessage, ChatTemplate, TextTokenizer};
use tasklm_train::lm_eval;

/// How conversations are cut, as the notice tells it.
const CUT: (&str, &str) = ("conversations", "lost their oldest exchanges");

/// The chat family: train, evaluate (assistant-token loss, perplexity); `predict` is
/// `tasklm chat`.
pub struct Chat;

impl TaskFamily for Chat {
    fn train(&self, job: &TrainJob, notice: Notice) -> Result<Report> {
        Ok(train(job, notice)?.into_report(job.task))
    }

    fn evaluate(&self, job: &EvalJob, notice: Notice) -> Result<Report> {
        evaluate(job, notice)
    }

    fn predictor(&self, job: &PredictJob) -> Result<Box<dyn Predictor>> {
        Err(crate::sft::not_served(job))
    }
}

/// The template for `tok`: a built-in one by `name` (`llama2`, `chatml`), else the one a tasklm
/// model was trained with, else the model's own `chat_template`. Makes sure the end-of-turn
/// token stops generation.
pub fn resolve_template(
    tok: &mut TextTokenizer,
    name: Option<&str>,
    meta: Option<&Value>,
) -> Result<ChatTemplate> {
    let bos = tok.bos_token.clone().unwrap_or_default();
    let eos = tok.eos_token.clone().unwrap_or_default();
    let tpl = match name {
        Some(n) => {
            let b = BuiltinTemplate::from_name(n).ok_or_else(|| {
                TaskError::Invalid(format!(
                    "--template {n}: expected one of {}",
                    BuiltinTemplate::NAMES.join(", ")
                ))
            })?;
            ChatTemplate::builtin(b, &bos, &eos)?
        }
        None => {
            let src = tok.chat_template.clone().ok_or_else(|| {
                TaskError::Invalid(format!(
                    "this model has no chat template; choose one with --template ({})",
                    BuiltinTemplate::NAMES.join(", ")
                ))
            })?;
            let end = meta
                .and_then(|m| m.get("end_of_turn"))
                .and_then(Value::as_str)
                .unwrap_or(&eos)
                .to_string();
            ChatTemplate::with_end_of_turn(&src, &bos, &eos, &end)?
        }
    };
    let eot = tok.token_to_id(tpl.end_of_turn()).ok_or_else(|| {
        TaskError::Invalid(format!(
            "the template ends assistant turns with `{}`, which is not a token of this model's \
             vocabulary",
            tpl.end_of_turn()
        ))
    })?;
    if !tok.eos_ids.contains(&eot) {
        tok.eos_ids.push(eot);
    }
    Ok(tpl)
}

fn encode_file(
    path: &Path,
    records: &[ChatRecord],
    tpl: &ChatTemplate,
    tok: &TextTokenizer,
    max_len: usize,
    truncation: Truncation,
) -> Result<EncodedFile> {
    encode_each(path, records, max_len, "conversations", |rec, stats| {
        encode_chat(tpl, tok, rec, max_len, truncation, stats)
    })
}

/// Fine-tunes on conversations with the loss on assistant turns; writes a model directory
/// whose tokenizer carries the template used.
fn train(job: &TrainJob, notice: Notice) -> Result<TrainOutcome> {
    let train_records = read_chat_jsonl(&job.data)?;
    let eval_records = job.eval.as_deref().map(read_chat_jsonl).transpose()?;
    let source = tasklm_hub::resolve(&job.model, job.progress)?;
    let meta = model_meta(&source);
    let ck = load_for_training(job, &source, notice)?;
    let mut tok = ck.tokenizer.clone();
    let template = job.options.template.as_deref();
    let tpl = resolve_template(&mut tok, template, meta.as_ref())?;
    tok.chat_template = Some(tpl.source().to_string());
    let max_len = job
        .max_seq_len
        .unwrap_or_else(|| default_max_seq_len(ck.config.max_position_embeddings));
    let train_file = encode_file(
        &job.data,
        &train_records,
        &tpl,
        &tok,
        max_len,
        job.truncation,
    )?;
    report_encoding(&job.data, &train_file, max_len, CUT, notice);
    let eval_file = match (&job.eval, &eval_records) {
        (Some(p), Some(r)) => {
            let e = encode_file(p, r, &tpl, &tok, max_len, job.truncation)?;
            report_encoding(p, &e, max_len, CUT, notice);
            Some(e)
        }
        _ => None,
    };
    let provenance = json!({
        "task": "chat",
        "base_model": job.model,
        "template": template.unwrap_or("model"),
        "end_of_turn": tpl.end_of_turn(),
        "max_seq_len": max_len,
        "data": data_section(
            (&job.data, train_file.records),
            job.eval
                .as_deref()
                .map(|p| (p, eval_file.as_ref().map_or(0, |e| e.records))),
        )?,
        "train_args": job.args,
    });
    let train_features = train_file.features.clone();
    fit_lm(
        job,
        ck,
        &tok,
        (train_features, &train_file),
        eval_file.as_ref(),
        provenance,
        max_len,
    )
}

/// Assistant-token loss and perplexity of a model on a conversations file.
fn evaluate(job: &EvalJob, notice: Notice) -> Result<Report> {
    let data = &job.data;
    let records = read_chat_jsonl(data)?;
    let mut session = ChatSession::load(&job.model, job.options.template.as_deref())?;
    let max_len = job
        .max_seq_len
        .unwrap_or_else(|| default_max_seq_len(session.loaded.config.max_position_embeddings));
    let file = encode_file(
        data,
        &records,
        &session.template,
        &session.loaded.tokenizer,
        max_len,
        Truncation::Left,
    )?;
    report_encoding(data, &file, max_len, CUT, notice);
    let m = &mut session.loaded;
    let (loss, tokens) = lm_eval(
        m.model.as_ref(),
        &file.features,
        m.tokenizer.pad_id(),
        job.batch_size,
    )?;
    Ok(crate::sft::lm_report(
        job,
        loss,
        file.features.len(),
        tokens,
    ))
}

/// A model with its chat template, answering conversations.
pub struct ChatSession {
    pub loaded: LoadedDecoder,
    pub template: ChatTemplate,
}

/// One reply.
#[derive(Clone, Debug)]
pub struct ChatReply {
    pub generation: Generation,
    /// Oldest exchanges left out so the conversation fits the context window.
    pub dropped_exchanges: usize,
}

impl ChatSession {
    /// Loads `spec` for chat; `template` overrides the model's own.
    pub fn load(spec: &str, template: Option<&str>) -> Result<Self> {
        let source = tasklm_hub::resolve(spec, true)?;
        let meta = model_meta(&source);
        let mut loaded = load_checkpoint(&source, DType::F32, &Device::Cpu)?.into_decoder()?;
        let template = resolve_template(&mut loaded.tokenizer, template, meta.as_ref())?;
        Ok(Self { loaded, template })
    }

    /// The prompt ids for `messages` (ending with the assistant's header), leaving out the
    /// oldest exchanges (never the system message) until `max_new_tokens` more fit.
    pub fn prompt_ids(
        &self,
        messages: &[ChatMessage],
        max_new_tokens: usize,
    ) -> Result<(Vec<u32>, usize)> {
        let ctx = self.loaded.model.max_context();
        let mut msgs = messages.to_vec();
        let mut dropped = 0;
        loop {
            let text = self.template.render(&msgs, true)?;
            let ids = self.loaded.tokenizer.encode(&text, false)?;
            if ids.len() + max_new_tokens <= ctx {
                return Ok((ids, dropped));
            }
            msgs = drop_oldest_turns(&msgs).ok_or_else(|| {
                TaskError::Invalid(format!(
                    "the last message is {} tokens; with --max-new-tokens {max_new_tokens} it \
                     does not fit the {ctx}-token context",
                    ids.len()
                ))
            })?;
            dropped += 1;
        }
    }

    /// Answers the conversation (its last message should be the user's), streaming text.
    pub fn reply(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ChatReply> {
        let (ids, dropped_exchanges) = self.prompt_ids(messages, params.max_new_tokens)?;
        let mut g = generate(
            self.loaded.model.as_ref(),
            &self.loaded.tokenizer,
            &[ids],
            params,
            &mut |_, t| on_text(t),
        )?;
        let generation = g
            .pop()
            .ok_or_else(|| TaskError::Invalid("no generation".into()))?;
        Ok(ChatReply {
            generation,
            dropped_exchanges,
        })
    }
}
