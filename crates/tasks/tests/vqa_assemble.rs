//! A LLaVA made from a vision tower and a decoder (tests/fixtures/tiny_clip_vision and
//! tiny_decoder): `<image>` joins the vocabulary with the mean embedding, the directory it is
//! saved to loads back to the same tensors, and with images spliced in, the positions before
//! the first image keep the plain decoder's logits (1e-5).

use anyhow::Result;
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};
use tasklm_models::vision::llava::Llava;
use tasklm_models::DecoderInput;
use tasklm_tasks::vqa::assemble::{assemble, load, save, VisionFeatures};
use tasklm_tasks::vqa::IMAGE_TOKEN;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[test]
fn a_vision_tower_and_a_decoder_make_a_llava_that_saves_and_loads() -> Result<()> {
    let decoder = fixture("tiny_decoder");
    let parts = assemble(
        &fixture("tiny_clip_vision"),
        decoder.to_str().unwrap_or_default(),
        VisionFeatures::default(),
        7,
        false,
    )?;
    let image = parts.config.image_token_index;
    assert_eq!(image, 400, "the next id after the decoder's 400");
    assert_eq!(parts.config.text.vocab_size, 401);
    assert_eq!(
        parts.config.tokens_per_image(),
        16,
        "32x32 images, 8x8 patches"
    );
    assert_eq!(parts.config_json["image_seq_length"], 16);
    assert_eq!(parts.tokenizer.encode(IMAGE_TOKEN, false)?, vec![image]);
    let emb = &parts.tensors["language_model.model.embed_tokens.weight"];
    let mean = emb.narrow(0, 0, 400)?.mean(0)?;
    assert!(
        max_abs_diff(&emb.i(400)?, &mean)? < 1e-6,
        "the new row is the mean"
    );
    assert!(parts
        .tensors
        .keys()
        .all(|k| !k.contains("classifier") && !k.starts_with("vision_tower.vision_model")));

    let dir = tempfile::tempdir()?;
    save(&parts, dir.path())?;
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let back = load(dir.path())?;
    assert_eq!(back.config, parts.config);
    assert_eq!(back.tensors.len(), parts.tensors.len());

    let vb = VarBuilder::from_tensors(back.tensors.clone(), DType::F32, &Device::Cpu);
    let model = Llava::new(&back.config, vb)?;
    let mut ids: Vec<u32> = vec![5, 17, 42, 99];
    ids.extend(std::iter::repeat_n(image, 16));
    ids.extend([7, 250, 3]);
    let pixels = Tensor::randn(0f32, 1.0, (1, 3, 32, 32), &Device::Cpu)?;
    let input = DecoderInput::from_rows(&[ids.clone()], &Device::Cpu)?;
    let logits = model.forward(input, &pixels, false)?; // (1, 23, 401)
    assert_eq!(logits.dims(), [1, 23, 401]);

    let plain = tasklm_hub::load_checkpoint_with(
        &tasklm_hub::ModelSource::HfDir(decoder),
        tasklm_hub::LoadOptions::default(),
        &Device::Cpu,
    )?;
    let vb = VarBuilder::from_tensors(plain.tensors, DType::F32, &Device::Cpu);
    let lm = plain.architecture.build(&plain.config, vb)?;
    let prefix = DecoderInput::from_rows(&[ids[..4].to_vec()], &Device::Cpu)?;
    let want = lm.lm_logits(&lm.forward_hidden(&prefix, None, false)?)?; // (1, 4, 400)
    let got = logits.narrow(1, 0, 4)?.narrow(2, 0, 400)?;
    let d = max_abs_diff(&got, &want)?;
    assert!(d < 1e-5, "the text before the image: {d}");
    Ok(())
}

/// A solid `rgb` square image of `side` pixels written to `path`.
fn solid(path: &std::path::Path, rgb: [u8; 3], side: u32) -> Result<()> {
    image::RgbImage::from_pixel(side, side, image::Rgb(rgb)).save(path)?;
    Ok(())
}

/// A red and a blue 32x32 image in `dir` and four questions about them: for each image, what
/// colour it is and whether it is blue (red colour, blue colour, red blue?, blue blue?).
fn two_images_four_questions(dir: &Path) -> Result<[tasklm_tasks::vqa::VqaExample; 4]> {
    let (red, blue) = (dir.join("red.png"), dir.join("blue.png"));
    solid(&red, [220, 20, 20], 32)?;
    solid(&blue, [20, 20, 220], 32)?;
    let ex = |image: &PathBuf, q: &str, a: &str| tasklm_tasks::vqa::VqaExample {
        image: image.clone(),
        question: q.into(),
        answer: Some(a.into()),
    };
    Ok([
        ex(&red, "what color is it?", "red"),
        ex(&blue, "what color is it?", "blue"),
        ex(&red, "is it blue?", "no"),
        ex(&blue, "is it blue?", "yes"),
    ])
}

/// The VQA objective: a tiny LLaVA (projector and decoder training, tower frozen) learns four
/// questions about two images by heart, scored on the answer tokens only; greedy answers are
/// then the right words; the frozen tower has no variables.
#[test]
fn a_tiny_llava_learns_questions_about_two_images() -> Result<()> {
    use tasklm_tasks::vqa::objective::encode_example;
    let dir = tempfile::tempdir()?;
    let examples = two_images_four_questions(dir.path())?;
    let decoder = fixture("tiny_decoder");
    let parts = assemble(
        &fixture("tiny_clip_vision"),
        decoder.to_str().unwrap_or_default(),
        VisionFeatures::default(),
        3,
        false,
    )?;
    let (image_id, n) = (
        parts.config.image_token_index,
        parts.config.tokens_per_image(),
    );
    let feats: Vec<_> = examples
        .iter()
        .map(|e| encode_example(&parts.tokenizer, image_id, n, e))
        .collect::<tasklm_tasks::Result<_>>()?;
    // Only the answer and EOS are scored.
    let scored = feats[0].labels.iter().filter(|&&l| l >= 0).count();
    let answer = parts.tokenizer.encode(" red", false)?.len() + 1;
    assert_eq!(scored, answer);
    assert_eq!(
        feats[0].ids.iter().filter(|&&t| t == image_id).count(),
        n,
        "one placeholder per image feature"
    );

    train_and_answer(&parts, feats, &examples)
}

/// Trains the projector and decoder of `parts` (tower frozen) on `feats` for 150 updates,
/// checks the loss fell tenfold, and that each of `examples`, asked alone, gets its answer.
fn train_and_answer(
    parts: &tasklm_tasks::vqa::assemble::VlmParts,
    feats: Vec<tasklm_tasks::vqa::objective::VqaFeatures>,
    examples: &[tasklm_tasks::vqa::VqaExample],
) -> Result<()> {
    use tasklm_tasks::vqa::objective::{greedy_answer, trainable_llava, VqaObjective, VqaStage};
    let dir = tempfile::tempdir()?;
    let stage = VqaStage {
        train_lm: true,
        train_vision: false,
    };
    let t = trainable_llava(parts, stage)?;
    assert!(t
        .params
        .iter()
        .all(|(k, _)| !k.starts_with("vision_tower.")));
    assert!(t.frozen.keys().all(|k| k.starts_with("vision_tower.")));
    let processor = tasklm_data::ImageProcessor::from_dir(&fixture("tiny_clip_vision"))?;
    let obj = VqaObjective {
        model: t.model,
        params: t.params,
        frozen: t.frozen,
        processor: processor.clone(),
        train: feats.clone(),
        eval: feats,
        pad_id: parts.tokenizer.pad_id(),
        eval_batch_size: 4,
        files: Box::new(|_: &std::path::Path| Ok(())),
    };
    let args = tasklm_train::TrainArgs {
        max_steps: Some(150),
        batch_size: 4,
        lr: 3e-3,
        max_grad_norm: 1.0,
        save_every: 0,
        ..tasklm_train::TrainArgs::default()
    };
    let out = dir.path().join("out");
    let opts = tasklm_train::trainer::TrainOptions {
        out: &out,
        resume: false,
        progress: false,
        stop: None,
    };
    let summary = tasklm_train::train(&obj, &args, opts)?;
    let first = summary.losses.first().copied().unwrap_or(f64::NAN);
    let last = summary.losses.last().copied().unwrap_or(f64::NAN);
    assert!(last < first / 10.0, "loss {first} -> {last}");
    for e in examples {
        let got = greedy_answer(
            &obj.model,
            &parts.tokenizer,
            &processor,
            &e.image,
            &e.question,
            4,
        )?;
        assert_eq!(Some(got.as_str()), e.answer.as_deref(), "{}", e.question);
    }
    Ok(())
}

/// Several questions about one image as one sequence of turns (`--questions-per-image`): the
/// image's placeholders once, every answer and its EOS scored, nothing else; a tiny LLaVA
/// trained on two such sequences answers each question asked alone.
#[test]
fn questions_about_one_image_train_as_turns() -> Result<()> {
    use tasklm_tasks::vqa::objective::{encode_example, encode_turns, turns_by_image};
    let dir = tempfile::tempdir()?;
    let examples = two_images_four_questions(dir.path())?;
    let [red_colour, blue_colour, red_blue, blue_blue] = examples.clone();
    let (red, blue) = (red_colour.image.clone(), blue_colour.image.clone());
    let groups = turns_by_image(&examples, 2, 0);
    assert_eq!(groups.len(), 2);
    assert!(groups[0].iter().all(|e| e.image == red) && groups[1].iter().all(|e| e.image == blue));
    assert_eq!(turns_by_image(&examples, 1, 0).len(), 4);
    // Each question as the first turn and as the second, so that asked alone (the first turn)
    // every one has been trained there.
    let groups = [
        vec![red_colour.clone(), red_blue.clone()],
        vec![red_blue.clone(), red_colour.clone()],
        vec![blue_colour.clone(), blue_blue.clone()],
        vec![blue_blue.clone(), blue_colour.clone()],
    ];

    let decoder = fixture("tiny_decoder");
    let parts = assemble(
        &fixture("tiny_clip_vision"),
        decoder.to_str().unwrap_or_default(),
        VisionFeatures::default(),
        3,
        false,
    )?;
    let (image_id, n) = (
        parts.config.image_token_index,
        parts.config.tokens_per_image(),
    );
    let tok = &parts.tokenizer;
    let feats: Vec<_> = groups
        .iter()
        .map(|g| encode_turns(tok, image_id, n, g))
        .collect::<tasklm_tasks::Result<_>>()?;
    // The first turn is the one-question encoding; the second continues it.
    let first = encode_example(tok, image_id, n, &red_colour)?;
    let next = tok.encode("\nQuestion: is it blue?\nAnswer:", false)?;
    let mut answer = tok.encode(" no", false)?;
    answer.extend(tok.eos_ids.first().copied());
    let mut want = first.ids.clone();
    want.extend(&next);
    want.extend(&answer);
    assert_eq!(feats[0].ids, want);
    let mut labels = first.labels.clone();
    labels.extend(std::iter::repeat_n(-100, next.len()));
    labels.extend(answer.iter().map(|&t| i64::from(t)));
    assert_eq!(feats[0].labels, labels);
    assert_eq!(feats[0].ids.iter().filter(|&&t| t == image_id).count(), n);
    // The image's placeholders are the shared prefix; each turn is its own segment after it.
    let prefix = first
        .ids
        .iter()
        .rposition(|&t| t == image_id)
        .map_or(0, |i| i + 1);
    let mut segments = vec![tasklm_nn::SHARED_SEGMENT; prefix];
    segments.resize(first.ids.len(), 1);
    segments.resize(want.len(), 2);
    assert_eq!(feats[0].segments, segments);
    let mixed = encode_turns(tok, image_id, n, &examples[..2]).err();
    assert!(mixed.is_some_and(|e| e.to_string().contains("two images")));

    separate_turns_lose_what_their_questions_lose_alone(&parts, &feats[0], &groups[0])?;
    train_and_answer(&parts, feats, &examples)
}

/// A sequence of turns over a shared image has the loss of its questions asked one by one:
/// the summed loss, the scored positions and the gradients agree (1e-4), because each turn
/// sees the image and itself only, at the positions it has alone. With the turns in view of
/// each other, the second answer reads the first and the loss differs.
fn separate_turns_lose_what_their_questions_lose_alone(
    parts: &tasklm_tasks::vqa::assemble::VlmParts,
    turns: &tasklm_tasks::vqa::objective::VqaFeatures,
    questions: &[tasklm_tasks::vqa::VqaExample],
) -> Result<()> {
    use tasklm_tasks::vqa::objective::{encode_example, trainable_llava, vqa_loss, VqaStage};
    let stage = VqaStage {
        train_lm: true,
        train_vision: true,
    };
    let t = trainable_llava(parts, stage)?;
    let processor = tasklm_data::ImageProcessor::from_dir(&fixture("tiny_clip_vision"))?;
    let (image_id, n) = (
        parts.config.image_token_index,
        parts.config.tokens_per_image(),
    );
    let pad = parts.tokenizer.pad_id();
    let (joint, scored, _) = vqa_loss(&t.model, &processor, &[turns], pad, false)?;
    let alone: Vec<_> = questions
        .iter()
        .map(|q| encode_example(&parts.tokenizer, image_id, n, q))
        .collect::<tasklm_tasks::Result<_>>()?;
    let (mut sum, mut count) = (Tensor::zeros((), DType::F32, &Device::Cpu)?, 0);
    for a in &alone {
        let (l, k, _) = vqa_loss(&t.model, &processor, &[a], pad, false)?;
        sum = (sum + l)?;
        count += k;
    }
    assert_eq!(scored, count);
    let (j, s) = (joint.to_scalar::<f32>()?, sum.to_scalar::<f32>()?);
    assert!(
        (j - s).abs() < 1e-4 * s.abs().max(1.0),
        "turns {j} vs alone {s}"
    );
    let (gj, gs) = (joint.backward()?, sum.backward()?);
    let mut compared = 0;
    for (name, v) in &t.params {
        let (a, b) = (gj.get(v), gs.get(v));
        match (a, b) {
            (Some(a), Some(b)) => {
                let d = max_abs_diff(a, b)?;
                let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                assert!(
                    d <= 1e-4 * scale.max(1e-3),
                    "{name}: gradient differs by {d}"
                );
                compared += 1;
            }
            (None, None) => {}
            _ => panic!("{name}: a gradient on one side only"),
        }
    }
    assert!(
        compared > t.params.len() / 2,
        "{compared} gradients compared"
    );
    let in_view = turns.clone().with_turns_in_view();
    let (v, _, _) = vqa_loss(&t.model, &processor, &[&in_view], pad, false)?;
    let v = v.to_scalar::<f32>()?;
    assert!((v - s).abs() > 1e-4, "turns in view {v} vs alone {s}");
    Ok(())
}
