//! The best model by an evaluation metric (`metric_for_best_model`), as transformers keeps it
//! with `load_best_model_at_end`: each evaluation that improves on the best so far writes the
//! model to `OUT/best` (atomically, as the final model is written), and at the end the best
//! model's files replace the last one's in `OUT`. The best step and value live in the trainer
//! state, so a resumed run compares against the best of the run it continues.

use super::{write_model, TrainArgs, TrainerState};
use crate::trainer::{Metrics, Objective};
use crate::{Result, TrainError};
use std::path::Path;

pub const BEST: &str = "best";

/// Keeps the model in `out/best` when `metrics` improve on the best so far; returns the note
/// to print. A `metric_for_best_model` the evaluation does not report is an error listing the
/// ones it does.
pub fn consider(
    out: &Path,
    args: &TrainArgs,
    state: &mut TrainerState,
    metrics: &Metrics,
    obj: &dyn Objective,
) -> Result<Option<String>> {
    let Some(name) = &args.metric_for_best_model else {
        return Ok(None);
    };
    let Some(value) = metrics.iter().find(|m| &m.0 == name).map(|m| m.1) else {
        let have: Vec<&str> = metrics.iter().map(|m| m.0.as_str()).collect();
        return Err(TrainError::Setting(format!(
            "metric_for_best_model `{name}`: the evaluation reports {}",
            have.join(", ")
        )));
    };
    let better = match state.best {
        None => value.is_finite(),
        Some((_, best)) if args.higher_is_better() => value > best,
        Some((_, best)) => value < best,
    };
    if !better {
        return Ok(None);
    }
    let dir = out.join(BEST);
    std::fs::create_dir_all(&dir)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", dir.display())))?;
    write_model(&dir, obj)?;
    state.best = Some((state.step, value));
    Ok(Some(format!(
        "best {name} so far: {value:.4} at step {}, written to {}",
        state.step,
        dir.display()
    )))
}

/// At the end of a run: when the best evaluation was not the last one, its files (in
/// `out/best`) replace the final model's in `out`. Returns the note to print.
pub fn load_best_at_end(out: &Path, state: &TrainerState) -> Result<Option<String>> {
    let Some((step, value)) = state.best else {
        return Ok(None);
    };
    if step == state.step {
        return Ok(Some(format!(
            "the final model is the best one (step {step}, {value:.4})"
        )));
    }
    let dir = out.join(BEST);
    let io = |p: &Path, e: std::io::Error| TrainError::Checkpoint(format!("{}: {e}", p.display()));
    for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
        let from = entry.map_err(|e| io(&dir, e))?.path();
        if let (true, Some(name)) = (from.is_file(), from.file_name()) {
            let to = out.join(name);
            std::fs::copy(&from, &to).map_err(|e| io(&to, e))?;
        }
    }
    super::checkpoint::sync_path(out)?;
    Ok(Some(format!(
        "the final model is the best one, from step {step} ({value:.4}), copied from {}",
        dir.display()
    )))
}
