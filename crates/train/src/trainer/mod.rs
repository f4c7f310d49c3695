//! The training loop every task shares: shuffled micro-batches, gradient accumulation with the
//! loss normalised by the units scored across the whole accumulated batch, clipping, AdamW
//! with a warmup schedule, a NaN/Inf guard, evaluation, atomic checkpoints and exact resume.

mod args;
mod best;
pub mod checkpoint;
mod log;
mod objective;
mod plan;

pub use args::TrainArgs;
pub use checkpoint::TrainerState;
pub use log::{StepRecord, TrainLog, METRICS};
pub use objective::{LossSum, Metrics, Objective};
pub use plan::EpochPlan;

use crate::{AdamW, AdamWConfig, Gradients, LrSchedule, Result, TrainError};
use candle_core::{DType, Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// Where and how a run writes.
#[derive(Clone, Copy, Debug)]
pub struct TrainOptions<'a> {
    /// The output directory: checkpoints, `metrics.jsonl`, and at the end the model.
    pub out: &'a Path,
    /// Continue from the newest complete checkpoint in `out`.
    pub resume: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Set (by a Ctrl-C handler) to stop after the current update with a checkpoint.
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    /// Updates taken in all (a resumed run counts the earlier ones).
    pub steps: u64,
    /// The loss of each update this run took, in order.
    pub losses: Vec<f64>,
    /// Updates refused for a NaN/Inf loss or gradient.
    pub refused: u64,
    pub final_eval: Option<Metrics>,
    pub tokens: usize,
    pub elapsed_s: f64,
}

/// The order of the examples in pass `epoch`: a permutation seeded by the run's seed and the
/// epoch, so the data position is all a resume needs.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

/// Examples per length group, in batches (transformers' `LengthGroupedSampler` uses 50).
pub const LENGTH_GROUP_BATCHES: usize = 50;

/// [`epoch_order`] with similar lengths batched together, as transformers' `group_by_length`:
/// the shuffled order is cut into groups of `LENGTH_GROUP_BATCHES * batch_size` examples, each
/// sorted longest first, so a batch pads to a length close to its members' and the data stays
/// shuffled at the scale of groups.
pub fn grouped_epoch_order(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: u64,
) -> Vec<usize> {
    let mut order = epoch_order(lengths.len(), seed, epoch);
    for group in order.chunks_mut(LENGTH_GROUP_BATCHES * batch_size.max(1)) {
        group.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    }
    order
}

/// One accumulated update's gradients (already divided by the units scored), summed loss
/// and counts.
pub struct Accumulated {
    pub grads: Gradients,
    pub loss: f64,
    pub scored: usize,
    pub tokens: usize,
}

/// Runs the micro-batches `micro` and returns their gradients normalised by the units scored
/// across all of them, so k micro-batches give the gradient of one batch of their union.
pub fn accumulate(obj: &dyn Objective, vars: &[Var], micro: &[&[usize]]) -> Result<Accumulated> {
    let mut grads = Gradients::zeros(vars.len());
    let (mut sum, mut scored, mut tokens) = (0f64, 0usize, 0usize);
    for idx in micro {
        let part = obj.train_loss(idx)?;
        sum += part.sum.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        scored += part.scored;
        tokens += part.tokens;
        if part.scored > 0 {
            let store = part.sum.backward()?;
            grads.add(Gradients::from_store(&store, vars))?;
        }
    }
    let loss = if scored > 0 {
        grads.scale(1.0 / scored as f64)?;
        sum / scored as f64
    } else {
        f64::NAN
    };
    Ok(Accumulated {
        grads,
        loss,
        scored,
        tokens,
    })
}

fn weights_of(params: &[(String, Var)]) -> HashMap<String, Tensor> {
    params
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect()
}

fn all_finite(params: &[(String, Var)]) -> Result<Option<String>> {
    for (name, v) in params {
        let s = v
            .as_tensor()
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?;
        if !s.is_finite() {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}

/// Writes the model files (weights + the objective's files) into `out`, each file renamed into
/// place from a synced temporary directory.
pub fn write_model(out: &Path, obj: &dyn Objective) -> Result<()> {
    let params = obj.params();
    if let Some(name) = all_finite(&params)? {
        return Err(TrainError::NonFinite(format!(
            "parameter `{name}` is not finite; refusing to write the model"
        )));
    }
    let io = |p: &Path, e: std::io::Error| TrainError::Checkpoint(format!("{}: {e}", p.display()));
    let tmp = out.join(".tmp-model");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let weights = tmp.join(obj.weights_file());
    candle_core::safetensors::save(&weights_of(&params), &weights)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", weights.display())))?;
    obj.write_files(&tmp)?;
    checkpoint::sync_dir_tree(&tmp)?;
    for entry in std::fs::read_dir(&tmp).map_err(|e| io(&tmp, e))? {
        let from = entry.map_err(|e| io(&tmp, e))?.path();
        if let Some(name) = from.file_name() {
            let to = out.join(name);
            // A folder (a sentence-transformers module) replaces the one an earlier run wrote:
            // rename cannot move a folder onto a non-empty one.
            if from.is_dir() && to.is_dir() {
                std::fs::remove_dir_all(&to).map_err(|e| io(&to, e))?;
            }
            std::fs::rename(&from, &to).map_err(|e| io(&to, e))?;
        }
    }
    std::fs::remove_dir(&tmp).map_err(|e| io(&tmp, e))?;
    checkpoint::sync_path(out)
}

struct Run<'a> {
    obj: &'a dyn Objective,
    args: &'a TrainArgs,
    opts: TrainOptions<'a>,
    params: Vec<(String, Var)>,
    vars: Vec<Var>,
    opt: AdamW,
    state: TrainerState,
    log: TrainLog,
}

impl Run<'_> {
    fn save_checkpoint(&self) -> Result<()> {
        if let Some(name) = all_finite(&self.params)? {
            return Err(TrainError::NonFinite(format!(
                "parameter `{name}` is not finite at step {}; refusing to checkpoint",
                self.state.step
            )));
        }
        let (optimizer, _) = self.opt.state();
        let dir = checkpoint::save(
            self.opts.out,
            &checkpoint::Saved {
                state: &self.state,
                weights: &weights_of(&self.params),
                optimizer: &optimizer,
            },
            self.args.save_total_limit,
            &|d| self.obj.write_files(d),
        )?;
        self.log
            .note(&format!("saved checkpoint {}", dir.display()));
        Ok(())
    }

    /// Evaluates, logs, and keeps the model in `OUT/best` when `metric_for_best_model`
    /// improved.
    fn evaluate(&mut self) -> Result<Option<Metrics>> {
        let m = self.obj.evaluate()?;
        if let Some(m) = &m {
            self.log.eval(self.state.step, m)?;
            if let Some(note) =
                best::consider(self.opts.out, self.args, &mut self.state, m, self.obj)?
            {
                self.log.note(&note);
            }
        }
        Ok(m)
    }

    /// The example order of pass `epoch`, with the objective's own batches when it has them.
    fn order(&self, epoch: u64) -> EpochPlan {
        epoch_plan(self.obj, self.args, self.state.seed, epoch)
    }

    /// The next micro-batches of one update; an update ends early at the end of an epoch.
    fn next_micro_batches(&mut self, plan: &mut EpochPlan) -> Vec<Vec<usize>> {
        let n = plan.len();
        if self.state.cursor >= n {
            self.state.epoch += 1;
            self.state.cursor = 0;
            *plan = self.order(self.state.epoch);
        }
        let mut out = Vec::new();
        for _ in 0..self.args.grad_accum {
            let (batch, end) = plan.batch_at(self.state.cursor);
            out.push(batch.to_vec());
            self.state.cursor = end;
            if end >= n {
                break;
            }
        }
        out
    }
}

/// The micro-batches of pass `epoch`: the shuffled (or length-grouped) order, cut by the
/// objective's own batches when it has them.
fn epoch_plan(obj: &dyn Objective, args: &TrainArgs, seed: u64, epoch: u64) -> EpochPlan {
    let order = match (args.group_by_length, obj.train_lengths()) {
        (true, Some(lengths)) => grouped_epoch_order(&lengths, args.batch_size, seed, epoch),
        _ => epoch_order(obj.train_len(), seed, epoch),
    };
    EpochPlan::new(order, args.batch_size, &|o: &[usize], b: usize| {
        obj.train_batches(o, b)
    })
}

/// Updates the run takes: `max_steps`, else `epochs` passes of the first pass's micro-batches
/// (an objective's own batching may make more than `n / batch_size` of them).
fn total_steps(obj: &dyn Objective, args: &TrainArgs) -> u64 {
    if args.max_steps.is_some() {
        return args.total_steps(obj.train_len());
    }
    let micro = epoch_plan(obj, args, args.seed, 0).batches();
    u64::from(args.epochs) * micro.div_ceil(args.grad_accum) as u64
}

fn resume_into(
    out: &Path,
    params: &[(String, Var)],
    opt: &mut AdamW,
    n: usize,
) -> Result<(TrainerState, std::path::PathBuf)> {
    let dir = checkpoint::latest(out)?.ok_or_else(|| {
        TrainError::Checkpoint(format!(
            "{}: --resume found no complete checkpoint in {}",
            out.display(),
            out.join(checkpoint::CHECKPOINTS).display()
        ))
    })?;
    let device = params
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let loaded = checkpoint::load(&dir, &device)?;
    if loaded.state.train_len != n {
        return Err(TrainError::Checkpoint(format!(
            "{}: the run had {} training examples, this one has {n}; resume with the same data",
            dir.display(),
            loaded.state.train_len
        )));
    }
    for (name, var) in params {
        let t = loaded.weights.get(name).ok_or_else(|| {
            TrainError::Checkpoint(format!("{}: no weight `{name}`", dir.display()))
        })?;
        if t.dims() != var.dims() {
            return Err(TrainError::Checkpoint(format!(
                "{}: `{name}` has shape {:?}, the model has {:?}",
                dir.display(),
                t.dims(),
                var.dims()
            )));
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    opt.load_state(&loaded.optimizer, loaded.state.optimizer_steps)?;
    Ok((loaded.state, dir))
}

/// Trains `obj` for the steps `args` sets, writing checkpoints, `metrics.jsonl` and at the end
/// the model into `opts.out`.
pub fn train(obj: &dyn Objective, args: &TrainArgs, opts: TrainOptions) -> Result<TrainSummary> {
    args.validate()?;
    let n = obj.train_len();
    if n == 0 {
        return Err(TrainError::Setting("no training examples".into()));
    }
    let out = opts.out;
    std::fs::create_dir_all(out)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", out.display())))?;
    let total = total_steps(obj, args);
    let params = obj.params();
    let mut opt = AdamW::new(
        params.clone(),
        AdamWConfig {
            weight_decay: args.weight_decay,
            ..AdamWConfig::default()
        },
    )?;
    let vars = opt.vars();
    let mut state = TrainerState {
        step: 0,
        epoch: 0,
        cursor: 0,
        seed: args.seed,
        optimizer_steps: 0,
        bad_streak: 0,
        train_len: n,
        best: None,
    };
    let mut resumed_from = None;
    if opts.resume {
        let (s, dir) = resume_into(out, &params, &mut opt, n)?;
        state = s;
        resumed_from = Some(dir);
    } else if let Some(dir) = checkpoint::latest(out)? {
        return Err(TrainError::Checkpoint(format!(
            "{} already holds checkpoint {}; pass --resume to continue it or choose another --out",
            out.display(),
            dir.display()
        )));
    }
    let schedule = LrSchedule {
        kind: args.scheduler,
        peak_lr: args.lr,
        warmup_steps: (args.warmup_ratio * total as f64).ceil() as u64,
        total_steps: total,
    };
    let log = TrainLog::open(out, total, state.step, opts.progress)?;
    if let Some(dir) = resumed_from {
        log.note(&format!(
            "resuming from {} at step {}",
            dir.display(),
            state.step
        ));
    }
    let mut run = Run {
        obj,
        args,
        opts,
        params,
        vars,
        opt,
        state,
        log,
    };
    let mut order = run.order(run.state.epoch);
    let started = Instant::now();
    let (mut losses, mut refused, mut tokens) = (Vec::new(), 0u64, 0usize);
    while run.state.step < total {
        let t0 = Instant::now();
        let micro = run.next_micro_batches(&mut order);
        let refs: Vec<&[usize]> = micro.iter().map(|m| m.as_slice()).collect();
        let mut acc = accumulate(obj, &run.vars, &refs)?;
        let lr = schedule.lr(run.state.step);
        let norm = if args.max_grad_norm > 0.0 {
            acc.grads.clip(args.max_grad_norm)?
        } else {
            acc.grads.norm()?
        };
        let ok = acc.loss.is_finite() && norm.is_finite();
        if ok {
            run.opt.step_with(&acc.grads, lr)?;
            run.state.bad_streak = 0;
        } else {
            refused += 1;
            run.state.bad_streak += 1;
            run.log.note(&format!(
                "step {}: loss {} grad norm {}: update refused ({} in a row)",
                run.state.step + 1,
                acc.loss,
                norm,
                run.state.bad_streak
            ));
            if run.state.bad_streak >= args.max_bad_steps {
                run.log.finish();
                return Err(TrainError::NonFinite(format!(
                    "{} updates in a row had a NaN/Inf loss or gradient (last at step {}); \
                     training stopped, the last checkpoint holds finite weights. Try a lower --lr",
                    run.state.bad_streak,
                    run.state.step + 1
                )));
            }
        }
        run.state.step += 1;
        run.state.optimizer_steps = run.opt.steps();
        tokens += acc.tokens;
        losses.push(acc.loss);
        let dt = t0.elapsed().as_secs_f64();
        run.log.step(&StepRecord {
            step: run.state.step,
            epoch: run.state.epoch as f64 + run.state.cursor as f64 / n as f64,
            loss: acc.loss,
            lr,
            grad_norm: norm,
            tokens_per_s: acc.tokens as f64 / dt.max(1e-9),
            tokens: acc.tokens,
            elapsed_s: started.elapsed().as_secs_f64(),
            refused: !ok,
        })?;
        let step = run.state.step;
        if step < total
            && opts
                .stop
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
        {
            run.save_checkpoint()?;
            run.log.finish();
            return Err(TrainError::Interrupted(format!(
                "interrupted after update {step} of {total}; checkpoint saved, --resume with \
                 the same command continues exactly"
            )));
        }
        if step < total {
            if args.eval_every > 0 && step.is_multiple_of(args.eval_every) {
                run.evaluate()?;
            }
            if args.save_every > 0 && step.is_multiple_of(args.save_every) {
                run.save_checkpoint()?;
            }
        }
    }
    let final_eval = run.evaluate()?;
    run.save_checkpoint()?;
    write_model(out, obj)?;
    if let Some(note) = best::load_best_at_end(out, &run.state)? {
        run.log.note(&note);
    } else if args.metric_for_best_model.is_some() && final_eval.is_none() {
        run.log
            .note("metric_for_best_model: no evaluation ran (no --eval data); the final model is the last one");
    }
    run.log.finish();
    Ok(TrainSummary {
        steps: run.state.step,
        losses,
        refused,
        final_eval,
        tokens,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}
