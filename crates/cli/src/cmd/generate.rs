use super::beam_args::{generation_config_dir, BeamArgs};
use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::io::{Read, Write};
use tasklm_generate::{beam_search, generate, BeamHypothesis, DecoderSteps, Generation, RowInput};
use tasklm_generate::{FinishReason, SamplingParams};
use tasklm_hub::catalog::DEFAULT_MODEL;
use tasklm_hub::{load_decoder_with, LoadOptions, LoadedDecoder};
use tasklm_text::{ChatMessage, TextTokenizer};

#[derive(Args, Clone)]
pub struct GenerateArgs {
    /// Model: a catalog name, a Hugging Face or LoRA adapter directory, a .gguf file or a hub
    /// id [default: smollm2-135m-instruct].
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub adapter: super::lora::AdapterFlags,
    /// The prompt; `-` reads it from stdin.
    #[arg(long)]
    pub prompt: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub beams: BeamArgs,
    /// Wrap the prompt in the model's chat template as one user turn.
    #[arg(long)]
    pub chat: bool,
    /// System message for --chat.
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Run a GGUF model's quantized matrices as stored (several times faster decoding; logits
    /// differ slightly from the f32 dequantized weights used by default).
    #[arg(long)]
    pub quantized: bool,
}

#[derive(Args, Clone)]
pub struct SamplingArgs {
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// 0 = off.
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// 1 = off.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// 0 = off.
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// 1 = off.
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Same seed, same text (default: drawn from the clock and reported with --json).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop before this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// With --json: report each token's logprob and this many most likely alternatives.
    #[arg(long, default_value_t = 0)]
    pub top_logprobs: usize,
}

impl SamplingArgs {
    pub fn params(&self, logprobs: bool) -> SamplingParams {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            seed,
            max_new_tokens: self.max_new_tokens,
            stop: self.stop.clone(),
            top_logprobs: self.top_logprobs,
            logprobs,
            ignore_eos: false,
        }
    }
}

/// The prompt text the model sees: raw, or rendered through the chat template (the one a
/// tasklm-trained directory was trained with, whose end-of-turn token then stops generation).
pub fn render_prompt(
    m: &mut LoadedDecoder,
    prompt: &str,
    chat: bool,
    system: Option<&str>,
) -> Result<String> {
    if !chat {
        return Ok(prompt.to_string());
    }
    let meta = tasklm_tasks::common::tasklm_json::model_meta(&m.source);
    let t = tasklm_tasks::chat::resolve_template(&mut m.tokenizer, None, meta.as_ref())
        .context("--chat")?;
    let mut msgs = Vec::new();
    if let Some(s) = system {
        msgs.push(ChatMessage::new("system", s));
    }
    msgs.push(ChatMessage::new("user", prompt));
    Ok(t.render(&msgs, true)?)
}

pub fn generation_json(g: &Generation, seed: u64) -> serde_json::Value {
    let mut v = json!({
        "text": g.text,
        "tokens": g.token_ids,
        "finish_reason": g.finish_reason,
        "usage": {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.token_ids.len()},
        "seed": seed,
    });
    if let Some(lp) = &g.logprobs {
        v["logprobs"] = json!({ "content": lp });
    }
    v
}

pub fn run(a: GenerateArgs) -> Result<()> {
    let prompt = if a.prompt == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the prompt from stdin")?;
        s
    } else {
        a.prompt.clone()
    };
    let params = a.sampling.params(a.json && a.sampling.top_logprobs > 0);
    params.validate()?;
    let (model, _view) = a
        .adapter
        .model_spec(a.model.as_deref(), Some(DEFAULT_MODEL))?;
    let source =
        tasklm_hub::resolve(&model, true).with_context(|| format!("resolving model `{model}`"))?;
    if tasklm_hub::model_kind(&source)? == tasklm_hub::ModelKind::Seq2Seq {
        return super::generate_seq2seq::run(&a, &model, &source, &prompt, &params);
    }
    let opts = LoadOptions {
        quantized: a.quantized,
        ..LoadOptions::default()
    };
    let mut m = load_decoder_with(&model, opts, true)
        .with_context(|| format!("loading model `{model}`"))?;
    let text = render_prompt(&mut m, &prompt, a.chat, a.system.as_deref())?;
    let ids = m.tokenizer.encode(&text, true)?;
    let dir = generation_config_dir(&m.source);
    if let Some(beam) = a.beams.resolve(dir, a.sampling.max_new_tokens)? {
        let steps = DecoderSteps::new(m.model.as_ref(), m.tokenizer.pad_id());
        let hyps = beam_search(
            &steps,
            &m.tokenizer.eos_ids,
            &[RowInput::from_ids(ids.clone())],
            &beam,
        )?;
        return print_beams(&m.tokenizer, &hyps[0], ids.len(), a.json);
    }
    let mut out = std::io::stdout().lock();
    let stream = !a.json;
    let gens = generate(
        m.model.as_ref(),
        &m.tokenizer,
        &[ids],
        &params,
        &mut |_, delta| {
            if stream {
                let _ = out.write_all(delta.as_bytes());
                let _ = out.flush();
            }
        },
    )?;
    let g = &gens[0];
    if a.json {
        writeln!(out, "{}", generation_json(g, params.seed))?;
    } else {
        writeln!(out)?;
    }
    Ok(())
}

/// Prints beam search's best hypothesis (with --json, every returned one, best first).
pub fn print_beams(
    tok: &TextTokenizer,
    hyps: &[BeamHypothesis],
    prompt_tokens: usize,
    json: bool,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut rows = Vec::new();
    for h in hyps {
        let text = tok.decode(&h.token_ids, true)?;
        let finish = if h.ended_with_eos {
            FinishReason::Stop
        } else {
            FinishReason::Length
        };
        rows.push(
            json!({"text": text, "tokens": h.token_ids, "score": h.score, "finish_reason": finish}),
        );
    }
    let best = rows.first().cloned().unwrap_or_default();
    if json {
        let completion = hyps.first().map_or(0, |h| h.token_ids.len());
        let mut v = best;
        v["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion});
        if rows.len() > 1 {
            v["hypotheses"] = json!(rows);
        }
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{}", best["text"].as_str().unwrap_or_default())?;
    }
    Ok(())
}
