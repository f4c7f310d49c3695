//! `tasklm generate` on an encoder-decoder: the prompt goes to the encoder exactly as given (no
//! chat template), the decoder's output streams (with beams, the best sequence prints when the
//! search ends).

use super::beam_args::generation_config_dir;
use super::generate::{generation_json, print_beams, GenerateArgs};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use std::io::Write;
use tasklm_generate::{beam_search, sample, RowInput, SamplingParams, Seq2SeqSteps};
use tasklm_hub::{LoadOptions, ModelSource};

pub fn run(
    a: &GenerateArgs,
    name: &str,
    source: &ModelSource,
    prompt: &str,
    params: &SamplingParams,
) -> Result<()> {
    if a.chat {
        bail!("--chat: `{name}` is an encoder-decoder, which takes its prompt as the source, with no chat template");
    }
    if a.quantized {
        bail!("--quantized needs a GGUF decoder");
    }
    let ck = tasklm_hub::load_model(source, LoadOptions::default(), &Device::Cpu)
        .with_context(|| format!("loading model `{name}`"))?;
    let model = ck.seq2seq().context("an encoder-decoder checkpoint")?;
    let tok = &ck.tokenizer;
    let ids = tok.encode(prompt, true)?;
    let steps = Seq2SeqSteps::new(model);
    let rows = [RowInput::from_ids(ids.clone())];
    let dir = generation_config_dir(source);
    if let Some(beam) = a.beams.resolve(dir, a.sampling.max_new_tokens)? {
        let hyps = beam_search(&steps, &tok.eos_ids, &rows, &beam)?;
        return print_beams(tok, &hyps[0], ids.len(), a.json);
    }
    let mut out = std::io::stdout().lock();
    let stream = !a.json;
    let gens = sample(&steps, tok, &rows, params, &mut |_, delta| {
        if stream {
            let _ = out.write_all(delta.as_bytes());
            let _ = out.flush();
        }
    })?;
    let mut g = gens.into_iter().next().context("one generation")?;
    g.prompt_tokens = ids.len();
    if a.json {
        writeln!(out, "{}", generation_json(&g, params.seed))?;
    } else {
        writeln!(out)?;
    }
    Ok(())
}
