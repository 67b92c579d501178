//! Training checkpoints: an HF model directory (`checkpoint-<step>/`) plus the optimizer moments
//! and a `trainer_state.json`, enough for `--resume` to continue exactly.
//!
//! The dropout and shuffle generators are derived from `(seed, step)` and `(seed, epoch)`, so the
//! seed and the step fully describe the random state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::student::new_model::write_json;
use crate::{Error, Result};

/// File name of the optimizer moments inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// File name of the trainer state inside a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";

/// What a checkpoint records besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer updates done.
    pub step: usize,
    /// Total updates planned.
    pub total_steps: usize,
    /// AdamW's step count `t`.
    pub adam_step: u64,
    /// Seed of the shuffle and dropout generators.
    pub seed: u64,
    /// Settings that must not change across a resume (triplets, batch, accumulation, lr, …).
    pub fingerprint: String,
}

/// The checkpoint directory for `step` under `out`.
pub fn checkpoint_dir(out: &Path, step: usize) -> PathBuf {
    out.join(format!("checkpoint-{step}"))
}

/// The checkpoint with the highest step under `out`, if any.
pub fn latest_checkpoint(out: &Path) -> Result<Option<(usize, PathBuf)>> {
    latest_checkpoint_upto(out, None)
}

/// The complete checkpoint with the highest step not above `max_step` (any when `None`).
pub fn latest_checkpoint_upto(
    out: &Path,
    max_step: Option<usize>,
) -> Result<Option<(usize, PathBuf)>> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(None);
    };
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(out, e))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix("checkpoint-"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let complete = entry.path().join(STATE_FILE).is_file();
        let allowed = max_step.is_none_or(|max| step <= max);
        if complete && allowed && best.as_ref().is_none_or(|(s, _)| step > *s) {
            best = Some((step, entry.path()));
        }
    }
    Ok(best)
}

/// Writes the optimizer moments and the state; the model files are written by the caller.
/// The state file goes last, so a checkpoint without it is incomplete and ignored.
pub fn save_training_state(
    dir: &Path,
    moments: &HashMap<String, Tensor>,
    state: &TrainerState,
) -> Result<()> {
    crate::student::save_weights(moments, &dir.join(OPTIMIZER_FILE))?;
    let json = serde_json::to_value(state).map_err(|e| Error::Other(e.to_string()))?;
    write_json(&dir.join(STATE_FILE), &json)
}

/// Reads the moments and state written by [`save_training_state`].
pub fn load_training_state(dir: &Path) -> Result<(HashMap<String, Tensor>, TrainerState)> {
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| Error::Model {
        path: state_path.clone(),
        message: format!("invalid trainer state: {e}"),
    })?;
    let opt_path = dir.join(OPTIMIZER_FILE);
    let moments =
        candle_core::safetensors::load(&opt_path, &Device::Cpu).map_err(|e| Error::Model {
            path: opt_path.clone(),
            message: format!("cannot read optimizer state: {e}"),
        })?;
    Ok((moments, state))
}
