use crate::cmd::beam_args::BeamArgs;
use crate::cmd::generate::{self, GenerateArgs, SamplingArgs};
use anyhow::Result;
use tasklm_hub::catalog::DEFAULT_MODEL;

/// Pulls the default model (if needed) and answers one question with it, greedily.
pub fn run() -> Result<()> {
    eprintln!("tasklm quickstart: model {DEFAULT_MODEL}, chat prompt, greedy decoding");
    let prompt = "What is the capital of France? Answer in one sentence.";
    eprintln!("> {prompt}");
    generate::run(GenerateArgs {
        model: Some(DEFAULT_MODEL.into()),
        adapter: Default::default(),
        prompt: prompt.into(),
        sampling: SamplingArgs {
            max_new_tokens: 48,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            seed: Some(0),
            stop: vec![],
            top_logprobs: 0,
        },
        beams: BeamArgs {
            num_beams: Some(1),
            ..BeamArgs::default()
        },
        chat: true,
        system: None,
        json: false,
        quantized: false,
    })?;
    eprintln!("\nnext: `tasklm generate --model {DEFAULT_MODEL} --prompt \"...\"`, `tasklm list`, `tasklm bench generate`");
    Ok(())
}
