//! Makes a LLaVA directory from a vision encoder and a decoder (`tasklm_tasks::vqa::assemble`)
//! and writes beside it `check.safetensors`: input ids with one image's placeholders, random
//! pixels and tasklm's logits for them, for `scripts/golden/llava_assembled.py` to compare
//! with transformers' `LlavaForConditionalGeneration` on the same directory.
//!   cargo run -p tasklm-tasks --example assemble_llava -- VISION_DIR DECODER OUT_DIR
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::PathBuf;
use tasklm_models::vision::llava::Llava;
use tasklm_models::DecoderInput;
use tasklm_tasks::vqa::assemble::{assemble, load, save, VisionFeatures};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [vision, decoder, out] = args.as_slice() else {
        anyhow::bail!("usage: assemble_llava VISION_DIR DECODER OUT_DIR");
    };
    let out = PathBuf::from(out);
    save(
        &assemble(vision.as_ref(), decoder, VisionFeatures::default(), 7, true)?,
        &out,
    )?;
    let parts = load(&out)?;
    let cfg = &parts.config;
    let vb = VarBuilder::from_tensors(parts.tensors.clone(), DType::F32, &Device::Cpu);
    let model = Llava::new(cfg, vb)?;
    let side = cfg.vision.image_size();
    let mut ids: Vec<u32> = vec![5, 17, 42, 9];
    ids.extend(std::iter::repeat_n(
        cfg.image_token_index,
        cfg.tokens_per_image(),
    ));
    ids.extend([7, 25, 3]);
    let pixels = Tensor::randn(
        0f32,
        1.0,
        (1, cfg.vision.num_channels(), side, side),
        &Device::Cpu,
    )?;
    let input = DecoderInput::from_rows(&[ids.clone()], &Device::Cpu)?;
    let logits = model.forward(input, &pixels, false)?;
    let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    let n = ids.len();
    let check: HashMap<String, Tensor> = [
        (
            "input_ids".to_string(),
            Tensor::from_vec(ids, (1, n), &Device::Cpu)?,
        ),
        ("pixel_values".to_string(), pixels),
        ("logits".to_string(), logits),
    ]
    .into();
    candle_core::safetensors::save(&check, out.join("check.safetensors"))?;
    println!(
        "{}: LLaVA written, check.safetensors beside it",
        out.display()
    );
    Ok(())
}
