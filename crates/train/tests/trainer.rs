//! The shared trainer: accumulation equals one big batch, packing does not change the loss,
//! resume is bit-identical, a NaN never becomes an update, checkpoints are complete.

mod common;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use common::{objective, samples};
use std::cell::Cell;
use std::path::Path;
use tasklm_data::{collate, pack};
use tasklm_train::trainer::{checkpoint, Metrics};
use tasklm_train::{
    accumulate, causal_lm_loss, train, LmObjective, LossSum, Objective, TrainArgs, TrainOptions,
};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[test]
fn accumulating_4x2_equals_one_batch_of_8() -> Result<()> {
    let obj = objective(samples(8), vec![])?;
    let vars: Vec<Var> = obj.params.iter().map(|(_, v)| v.clone()).collect();
    let all: Vec<usize> = (0..8).collect();
    let one = accumulate(&obj, &vars, &[&all])?;
    let parts: Vec<&[usize]> = all.chunks(2).collect();
    assert_eq!(parts.len(), 4);
    let four = accumulate(&obj, &vars, &parts)?;
    assert_eq!(one.scored, four.scored);
    assert!(
        (one.loss - four.loss).abs() < 1e-6,
        "{} vs {}",
        one.loss,
        four.loss
    );
    let mut reached = 0;
    for i in 0..vars.len() {
        let (a, b) = (
            one.grads.get(i)?.expect("grad"),
            four.grads.get(i)?.expect("grad"),
        );
        let (a, b) = (&a, &b);
        let scale = a
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?
            .max(1e-6);
        let d = max_abs_diff(a, b)?;
        assert!(
            d / scale < 1e-4,
            "param {i}: gradients differ by {d} (scale {scale})"
        );
        reached += 1;
    }
    assert_eq!(reached, vars.len());
    // Normalising each micro-batch by its own count (the common bug) would differ: the
    // micro-batches score different numbers of tokens.
    let counts: Vec<usize> = parts
        .iter()
        .map(|p| {
            p.iter()
                .map(|&i| tasklm_data::scored_positions(&obj.train[i]))
                .sum()
        })
        .collect();
    assert!(counts.iter().any(|&c| c != counts[0]), "{counts:?}");
    Ok(())
}

#[test]
fn packed_loss_equals_unpacked_loss() -> Result<()> {
    let obj = objective(vec![], vec![])?;
    let feats = samples(6);
    let packed = pack(&feats, 32)?;
    assert!(packed.len() < feats.len(), "nothing was packed");
    let (a, na) = causal_lm_loss(
        obj.model.as_ref(),
        &collate(&feats, 0, &Device::Cpu)?,
        false,
    )?;
    let (b, nb) = causal_lm_loss(
        obj.model.as_ref(),
        &collate(&packed, 0, &Device::Cpu)?,
        false,
    )?;
    assert_eq!(na, nb);
    let (a, b) = (a.to_scalar::<f32>()?, b.to_scalar::<f32>()?);
    assert!((a - b).abs() / a < 1e-5, "packed {b} vs unpacked {a}");
    // Without the block-diagonal mask the samples would see each other and the loss change.
    let mut leaky = packed.clone();
    for f in &mut leaky {
        f.segments.clear();
    }
    let (c, _) = causal_lm_loss(
        obj.model.as_ref(),
        &collate(&leaky, 0, &Device::Cpu)?,
        false,
    )?;
    assert!((c.to_scalar::<f32>()? - a).abs() > 1e-3);
    Ok(())
}

fn args(max_steps: u64) -> TrainArgs {
    TrainArgs {
        max_steps: Some(max_steps),
        batch_size: 2,
        grad_accum: 2,
        lr: 1e-2,
        weight_decay: 0.01,
        warmup_ratio: 0.2,
        save_every: 3,
        save_total_limit: 10,
        eval_every: 2,
        ..TrainArgs::default()
    }
}

fn weights(obj: &LmObjective) -> Vec<(String, Vec<f32>)> {
    obj.params
        .iter()
        .map(|(k, v)| {
            let t = v.as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>());
            (k.clone(), t.unwrap_or_default())
        })
        .collect()
}

fn logged_losses(out: &Path) -> Result<Vec<(u64, f64)>> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl"))?;
    let mut v = Vec::new();
    for line in text.lines() {
        let j: serde_json::Value = serde_json::from_str(line)?;
        if let (Some(s), Some(l)) = (j["step"].as_u64(), j["loss"].as_f64()) {
            v.push((s, l));
        }
    }
    Ok(v)
}

#[test]
fn resume_continues_bit_identically() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    // 10 examples, 4 per update: epochs end mid-way, so the data position matters.
    let full = tmp.path().join("full");
    let a = objective(samples(10), samples(3))?;
    let run = train(
        &a,
        &args(8),
        TrainOptions {
            out: &full,
            resume: false,
            progress: false,
            stop: None,
        },
    )?;
    assert_eq!(run.steps, 8);
    assert!(run.final_eval.is_some());

    // An interrupted run: the same directory as it stood after the step-6 checkpoint.
    let cut = tmp.path().join("cut");
    std::fs::create_dir_all(cut.join("checkpoints"))?;
    let ck = full.join("checkpoints/step-00000006");
    copy_dir(&ck, &cut.join("checkpoints/step-00000006"))?;
    std::fs::copy(full.join("metrics.jsonl"), cut.join("metrics.jsonl"))?;
    let b = objective(samples(10), samples(3))?;
    let err = train(
        &b,
        &args(8),
        TrainOptions {
            out: &cut,
            resume: false,
            progress: false,
            stop: None,
        },
    )
    .expect_err("a directory with checkpoints needs --resume");
    assert!(err.to_string().contains("--resume"), "{err}");
    let rest = train(
        &b,
        &args(8),
        TrainOptions {
            out: &cut,
            resume: true,
            progress: false,
            stop: None,
        },
    )?;
    assert_eq!(rest.losses.len(), 2);
    assert_eq!(
        rest.losses[..],
        run.losses[6..],
        "per-step losses differ after resume"
    );
    assert_eq!(
        weights(&a),
        weights(&b),
        "final weights differ after resume"
    );
    assert_eq!(logged_losses(&full)?, logged_losses(&cut)?);
    // The model directory holds the weights and the objective's files.
    assert!(cut.join("model.safetensors").is_file() && cut.join("config.json").is_file());
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let p = e?.path();
        std::fs::copy(&p, to.join(p.file_name().expect("name")))?;
    }
    Ok(())
}

#[test]
fn checkpoints_are_complete_and_pruned() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path();
    // A leftover temporary directory from a crash is never taken for a checkpoint.
    std::fs::create_dir_all(out.join("checkpoints/.tmp-step-00000009"))?;
    assert!(checkpoint::latest(out)?.is_none());
    let obj = objective(samples(8), vec![])?;
    let a = TrainArgs {
        save_total_limit: 2,
        ..args(7)
    };
    train(
        &obj,
        &a,
        TrainOptions {
            out,
            resume: false,
            progress: false,
            stop: None,
        },
    )?;
    let mut names: Vec<String> = std::fs::read_dir(out.join("checkpoints"))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    assert_eq!(
        names,
        [".tmp-step-00000009", "step-00000006", "step-00000007"]
    );
    let latest = checkpoint::latest(out)?.expect("a checkpoint");
    assert!(latest.ends_with("step-00000007"));
    let loaded = checkpoint::load(&latest, &Device::Cpu)?;
    assert_eq!(loaded.state.step, 7);
    assert_eq!(loaded.weights.len(), obj.params.len());
    assert_eq!(loaded.optimizer.len(), 2 * obj.params.len());
    Ok(())
}

/// The tiny objective, with a NaN loss on chosen calls of `train_loss`.
struct Poisoned {
    inner: LmObjective,
    calls: Cell<usize>,
    poison: Vec<usize>,
}

impl Objective for Poisoned {
    fn params(&self) -> Vec<(String, Var)> {
        self.inner.params()
    }
    fn train_len(&self) -> usize {
        self.inner.train_len()
    }
    fn train_loss(&self, indices: &[usize]) -> tasklm_train::Result<LossSum> {
        let call = self.calls.get();
        self.calls.set(call + 1);
        let mut l = self.inner.train_loss(indices)?;
        if self.poison.contains(&call) {
            l.sum = (l.sum * f64::NAN)?;
        }
        Ok(l)
    }
    fn evaluate(&self) -> tasklm_train::Result<Option<Metrics>> {
        self.inner.evaluate()
    }
    fn write_files(&self, dir: &Path) -> tasklm_train::Result<()> {
        self.inner.write_files(dir)
    }
}

fn finite(obj: &LmObjective) -> Result<bool> {
    for (_, v) in &obj.params {
        let s = v
            .as_tensor()
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?;
        if !s.is_finite() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[test]
fn a_nan_loss_is_refused_and_repeated_nans_abort() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let one = tmp.path().join("one");
    // grad_accum 2: calls 2 and 3 make update 2.
    let p = Poisoned {
        inner: objective(samples(8), vec![])?,
        calls: Cell::new(0),
        poison: vec![2],
    };
    let run = train(
        &p,
        &args(4),
        TrainOptions {
            out: &one,
            resume: false,
            progress: false,
            stop: None,
        },
    )?;
    assert_eq!(run.refused, 1);
    assert!(run.losses[1].is_nan() && run.losses.iter().filter(|l| l.is_finite()).count() == 3);
    assert!(finite(&p.inner)?);
    let log = std::fs::read_to_string(one.join("metrics.jsonl"))?;
    assert!(
        log.lines()
            .any(|l| l.contains("\"refused\":true") && l.contains("\"step\":2")),
        "{log}"
    );

    let many = tmp.path().join("many");
    let p = Poisoned {
        inner: objective(samples(8), vec![])?,
        calls: Cell::new(0),
        poison: (2..100).collect(),
    };
    let err = train(
        &p,
        &args(8),
        TrainOptions {
            out: &many,
            resume: false,
            progress: false,
            stop: None,
        },
    )
    .expect_err("three NaN updates in a row abort");
    let msg = err.to_string();
    assert!(
        msg.contains("3 updates in a row") && msg.contains("step 4"),
        "{msg}"
    );
    assert!(finite(&p.inner)?);
    assert!(!many.join("model.safetensors").exists());
    Ok(())
}

#[test]
fn grouping_by_length_keeps_every_example_and_cuts_padding() {
    let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 300 + 5).collect();
    let order = tasklm_train::trainer::grouped_epoch_order(&lengths, 4, 7, 0);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    let padded = |o: &[usize]| -> usize {
        o.chunks(4)
            .map(|b| b.iter().map(|&i| lengths[i]).max().unwrap_or(0) * b.len())
            .sum()
    };
    let plain = tasklm_train::epoch_order(1000, 7, 0);
    let real: usize = lengths.iter().sum();
    let (grouped_pad, plain_pad) = (padded(&order) - real, padded(&plain) - real);
    assert!(
        grouped_pad * 10 < plain_pad,
        "padding {grouped_pad} vs {plain_pad}"
    );
    assert_ne!(
        order,
        tasklm_train::trainer::grouped_epoch_order(&lengths, 4, 7, 1)
    );
}

#[test]
fn an_interrupt_saves_a_checkpoint_that_resume_continues() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path();
    let obj = objective(samples(8), vec![])?;
    let stop = std::sync::atomic::AtomicBool::new(true);
    let opts = TrainOptions {
        out,
        resume: false,
        progress: false,
        stop: Some(&stop),
    };
    let err = train(&obj, &args(4), opts).expect_err("interrupted");
    assert!(
        err.to_string().contains("interrupted after update 1 of 4"),
        "{err}"
    );
    assert!(checkpoint::latest(out)?.is_some_and(|p| p.ends_with("step-00000001")));
    let run = train(
        &obj,
        &args(4),
        TrainOptions {
            resume: true,
            stop: None,
            ..opts
        },
    )?;
    assert_eq!((run.steps, run.losses.len()), (4, 3));
    Ok(())
}
