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

/// How many of the newest checkpoints pruning keeps, besides the last acknowledged one.
pub const KEEP_CHECKPOINTS: usize = 2;

/// The steps of the `checkpoint-<step>` directories under `out`, each with whether it is
/// complete, in no particular order.
fn checkpoint_steps(out: &Path) -> Result<Vec<(usize, bool)>> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(Vec::new());
    };
    let mut steps = Vec::new();
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
        steps.push((step, entry.path().join(STATE_FILE).is_file()));
    }
    Ok(steps)
}

/// Removes the checkpoints under `out` from before update `current`, except the newest
/// [`KEEP_CHECKPOINTS`] complete ones up to `current` and the one of update `acknowledged` (the
/// one a server hands to whoever takes the stage over). Checkpoints after `current`, left by an
/// attempt that went further, are left alone. Returns the steps removed, ascending.
pub fn prune_checkpoints(out: &Path, current: usize, acknowledged: usize) -> Result<Vec<usize>> {
    let mut complete: Vec<usize> = checkpoint_steps(out)?
        .into_iter()
        .filter(|&(step, done)| done && step <= current)
        .map(|(step, _)| step)
        .collect();
    complete.sort_unstable();
    let newest = &complete[complete.len().saturating_sub(KEEP_CHECKPOINTS)..];
    let mut removed: Vec<usize> = checkpoint_steps(out)?
        .into_iter()
        .map(|(step, _)| step)
        .filter(|&step| step < current && step != acknowledged && !newest.contains(&step))
        .collect();
    removed.sort_unstable();
    for &step in &removed {
        let dir = checkpoint_dir(out, step);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    Ok(removed)
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
    let best = checkpoint_steps(out)?
        .into_iter()
        .filter(|&(step, complete)| complete && max_step.is_none_or(|max| step <= max))
        .map(|(step, _)| step)
        .max();
    Ok(best.map(|step| (step, checkpoint_dir(out, step))))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(out: &Path, step: usize, complete: bool) {
        let dir = checkpoint_dir(out, step);
        std::fs::create_dir_all(&dir).unwrap();
        if complete {
            std::fs::write(dir.join(STATE_FILE), "{}").unwrap();
        }
    }

    fn remaining(out: &Path) -> Vec<usize> {
        let mut steps: Vec<usize> = checkpoint_steps(out)
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect();
        steps.sort_unstable();
        steps
    }

    #[test]
    fn pruning_keeps_the_newest_two_and_the_acknowledged_one() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        for step in [10, 20, 30, 40, 50] {
            checkpoint(out, step, true);
        }
        checkpoint(out, 45, false);
        checkpoint(out, 70, true);
        // At update 50 with 20 acknowledged: 40 and 50 are the newest, 70 is from a later attempt.
        assert_eq!(prune_checkpoints(out, 50, 20).unwrap(), [10, 30, 45]);
        assert_eq!(remaining(out), [20, 40, 50, 70]);
        assert_eq!(
            latest_checkpoint_upto(out, Some(20)).unwrap().unwrap().0,
            20
        );
        // Acknowledged up to the newest: only the two newest stay below the current update.
        checkpoint(out, 60, true);
        assert_eq!(prune_checkpoints(out, 60, 60).unwrap(), [20, 40]);
        assert_eq!(remaining(out), [50, 60, 70]);
    }
}
