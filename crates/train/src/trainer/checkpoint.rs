//! Checkpoints in `OUT/checkpoints/step-NNNNNNNN`: the weights, the optimizer moments and the
//! trainer state (step, data position, seed). Each is written into a hidden temporary
//! directory, fsynced and renamed into place, so a directory named `step-*` is always complete.

use crate::{Result, TrainError};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Where training stands; with the weights and optimizer state, enough to resume exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Updates taken (refused ones included).
    pub step: u64,
    /// Current pass over the data (0-based); its order is a permutation seeded by `seed`
    /// and `epoch`, so no RNG stream needs saving.
    pub epoch: u64,
    /// Examples of this epoch's order already consumed.
    pub cursor: usize,
    pub seed: u64,
    /// Updates the optimizer applied (bias correction counts these).
    pub optimizer_steps: u64,
    /// Consecutive refused updates.
    pub bad_streak: u32,
    /// Training examples when the run started (a resume on other data is refused).
    pub train_len: usize,
    /// The best evaluation so far by `metric_for_best_model`: its step and value.
    #[serde(default)]
    pub best: Option<(u64, f64)>,
}

pub const CHECKPOINTS: &str = "checkpoints";
const STATE: &str = "trainer_state.json";
const WEIGHTS: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";

fn io(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint(format!("{}: {e}", path.display()))
}

/// fsyncs a file or directory.
pub fn sync_path(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(path, e))
}

/// fsyncs every file in `dir`, then `dir` itself.
pub fn sync_dir_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.is_file() {
            sync_path(&path)?;
        }
    }
    sync_path(dir)
}

fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// The newest complete checkpoint in `out`, if any.
pub fn latest(out: &Path) -> Result<Option<PathBuf>> {
    let dir = out.join(CHECKPOINTS);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
        let path = entry.map_err(|e| io(&dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if path.join(STATE).is_file() && best.as_ref().is_none_or(|(b, _)| step > *b) {
            best = Some((step, path));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// What a checkpoint holds.
pub struct Saved<'a> {
    pub state: &'a TrainerState,
    pub weights: &'a HashMap<String, Tensor>,
    pub optimizer: &'a HashMap<String, Tensor>,
}

/// Writes a checkpoint atomically, calling `extra` to add the model's other files, and keeps
/// only the newest `keep` checkpoints.
pub fn save(
    out: &Path,
    saved: &Saved,
    keep: usize,
    extra: &dyn Fn(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dir = out.join(CHECKPOINTS);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let name = step_dir_name(saved.state.step);
    let tmp = dir.join(format!(".tmp-{name}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    candle_core::safetensors::save(saved.weights, tmp.join(WEIGHTS))
        .map_err(|e| io(&tmp.join(WEIGHTS), e))?;
    candle_core::safetensors::save(saved.optimizer, tmp.join(OPTIMIZER))
        .map_err(|e| io(&tmp.join(OPTIMIZER), e))?;
    extra(&tmp)?;
    let state = serde_json::to_string_pretty(saved.state).map_err(|e| io(&tmp, e))?;
    std::fs::write(tmp.join(STATE), state).map_err(|e| io(&tmp.join(STATE), e))?;
    sync_dir_tree(&tmp)?;
    let dest = dir.join(&name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| io(&dest, e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| io(&dest, e))?;
    sync_path(&dir)?;
    prune(&dir, keep.max(1))?;
    Ok(dest)
}

fn prune(dir: &Path, keep: usize) -> Result<()> {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
        })
        .collect();
    steps.sort();
    let n = steps.len().saturating_sub(keep);
    for old in &steps[..n] {
        std::fs::remove_dir_all(old).map_err(|e| io(old, e))?;
    }
    Ok(())
}

/// A checkpoint read back.
pub struct Loaded {
    pub state: TrainerState,
    pub weights: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
}

pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
    let path = dir.join(STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| io(&path, e))?;
    let read = |name: &str| {
        let p = dir.join(name);
        candle_core::safetensors::load(&p, device).map_err(|e| io(&p, e))
    };
    Ok(Loaded {
        state,
        weights: read(WEIGHTS)?,
        optimizer: read(OPTIMIZER)?,
    })
}
