//! The training loop of `gpu-runner train`: schedule, shuffle, accumulation, logging,
//! evaluation, checkpoints and resume.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use super::checkpoint::{
    checkpoint_dir, latest_checkpoint_upto, load_training_state, prune_checkpoints,
    save_training_state, TrainerState,
};
use super::data::{read_triplets, Triplet};
use super::{Grads, TrainConfig, Trainer};
use crate::observe::{Observer, Silent};
use crate::schedule::{micro_batches_per_epoch, updates_per_epoch, LinearSchedule};
use crate::{Error, Result};

/// File name of the jsonl training log inside the output directory.
pub const LOG_FILE: &str = "train_log.jsonl";

/// One line of the training log.
#[derive(Debug, Clone, Serialize)]
struct StepLog {
    step: usize,
    lr: f64,
    loss: f32,
    grad_norm: f32,
    examples_per_s: f64,
}

/// What a finished (or stopped) run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Updates done, including those of earlier runs when resumed.
    pub steps_done: usize,
    /// Updates planned.
    pub total_steps: usize,
    /// Logged loss of the last update.
    pub last_loss: f32,
    /// Triplets that went through the student in this call (not those of a resumed-from run).
    pub triplets_seen: usize,
    /// Seconds before the first update: reading the triplets, loading the model, resuming.
    pub setup_seconds: f64,
}

/// The order of triplets in `epoch`: a Fisher–Yates shuffle seeded with `seed + epoch`.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed.wrapping_add(epoch as u64)));
    order
}

fn fingerprint(cfg: &TrainConfig, n_triplets: usize) -> String {
    format!(
        "triplets={n_triplets} epochs={} batch={} accum={} lr={} warmup={} wd={} clip={} \
         max_length={} seed={} drop_last={} dropout={} bf16={}",
        cfg.epochs,
        cfg.batch_size,
        cfg.grad_accum,
        cfg.lr,
        cfg.warmup_ratio,
        cfg.weight_decay,
        cfg.max_grad_norm,
        cfg.max_length,
        cfg.seed,
        cfg.drop_last,
        cfg.dropout,
        cfg.bf16
    )
}

/// Opens the log; on a resume keeps only the lines of updates up to `keep_through`.
fn open_log(out: &Path, keep_through: usize) -> Result<File> {
    let path = out.join(LOG_FILE);
    let mut kept = Vec::new();
    if keep_through > 0 {
        if let Ok(file) = File::open(&path) {
            for line in BufReader::new(file).lines() {
                let line = line.map_err(|e| Error::io(&path, e))?;
                let step = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()));
                if step.is_some_and(|s| s as usize <= keep_through) {
                    kept.push(line);
                }
            }
        }
    }
    let mut file = File::create(&path).map_err(|e| Error::io(&path, e))?;
    for line in kept {
        writeln!(file, "{line}").map_err(|e| Error::io(&path, e))?;
    }
    Ok(file)
}

fn log_line(file: &mut File, out: &Path, value: &impl Serialize) -> Result<()> {
    let line = serde_json::to_string(value).map_err(|e| Error::Other(e.to_string()))?;
    writeln!(file, "{line}")
        .and_then(|()| file.flush())
        .map_err(|e| Error::io(out.join(LOG_FILE), e))
}

fn progress_bar(total: usize, start: usize, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} updates, ETA {eta_precise} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_position(start as u64);
    bar
}

/// Saves a checkpoint of the state after `step` updates.
fn save_checkpoint(trainer: &Trainer, cfg: &TrainConfig, state: &TrainerState) -> Result<()> {
    let dir = checkpoint_dir(&cfg.out, state.step);
    trainer.save_model(&dir)?;
    let (moments, _) = trainer.optimizer().state();
    save_training_state(&dir, &moments, state)?;
    tracing::info!("saved {}", dir.display());
    Ok(())
}

/// What a training run reports to, and where it may resume from.
#[derive(Clone, Copy)]
pub struct TrainHooks<'a> {
    /// Gets `loss`, `lr`, `grad_norm` (and `eval_loss`) per update, progress in updates and
    /// every checkpoint; when it asks to stop, the run checkpoints and returns
    /// [`Error::Stopped`].
    pub observer: &'a dyn Observer,
    /// With `resume`, only checkpoints at or before this update count (0: none).
    pub resume_max_step: Option<usize>,
}

impl Default for TrainHooks<'static> {
    fn default() -> Self {
        TrainHooks {
            observer: &Silent,
            resume_max_step: None,
        }
    }
}

/// Runs `gpu-runner train` on `device`.
pub fn train(cfg: &TrainConfig, device: &Device) -> Result<TrainSummary> {
    train_observed(cfg, device, TrainHooks::default())
}

/// [`train`], reporting to `hooks.observer` and stopping between updates when it asks.
pub fn train_observed(
    cfg: &TrainConfig,
    device: &Device,
    hooks: TrainHooks<'_>,
) -> Result<TrainSummary> {
    let obs = hooks.observer;
    let started = Instant::now();
    let triplets = read_triplets(&cfg.train)?;
    let eval = cfg.eval.as_deref().map(read_triplets).transpose()?;
    if triplets.is_empty() {
        return Err(Error::input(&cfg.train, 1, "<file>", "no triplets"));
    }
    let n_micro = micro_batches_per_epoch(triplets.len(), cfg.batch_size, cfg.drop_last);
    if n_micro == 0 {
        return Err(Error::Other(format!(
            "{} triplets make no full batch of {} (drop_last)",
            triplets.len(),
            cfg.batch_size
        )));
    }
    let per_epoch = updates_per_epoch(n_micro, cfg.grad_accum);
    let total = per_epoch * cfg.epochs.max(1);
    let schedule = LinearSchedule::new(cfg.lr, total, cfg.warmup_ratio);
    let fingerprint = fingerprint(cfg, triplets.len());
    let mut trainer = Trainer::new(cfg, device)?;

    let mut start = 0;
    if cfg.resume {
        if let Some((step, dir)) = latest_checkpoint_upto(&cfg.out, hooks.resume_max_step)? {
            let (moments, state) = load_training_state(&dir)?;
            if state.fingerprint != fingerprint {
                return Err(Error::Model {
                    path: dir.join(super::checkpoint::STATE_FILE),
                    message: format!(
                        "checkpoint settings differ: {} vs now {fingerprint}",
                        state.fingerprint
                    ),
                });
            }
            trainer.restore(&dir, &moments, state.adam_step)?;
            start = step;
            tracing::info!("resuming from {} (update {step} of {total})", dir.display());
        } else {
            tracing::info!(
                "resume: no usable checkpoint in {}, starting fresh",
                cfg.out.display()
            );
        }
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    let mut log = open_log(&cfg.out, start)?;
    tracing::info!(
        "{} triplets, {n_micro} micro-batches per epoch, {total} updates, warmup {}",
        triplets.len(),
        schedule.warmup_steps
    );
    let bar = progress_bar(total, start, cfg.progress);
    let mut summary = TrainSummary {
        steps_done: start,
        total_steps: total,
        last_loss: f32::NAN,
        triplets_seen: 0,
        setup_seconds: started.elapsed().as_secs_f64(),
    };
    let mut order: Option<(usize, Vec<usize>)> = None;
    // The checkpoint resumed from is the one the server handed over: kept until a newer one is
    // acknowledged.
    let mut acknowledged = start;
    for step in start + 1..=total {
        let t0 = Instant::now();
        let epoch = (step - 1) / per_epoch;
        let update = (step - 1) % per_epoch;
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            order = Some((epoch, epoch_order(triplets.len(), cfg.seed, epoch)));
        }
        let Some((_, order)) = order.as_ref() else {
            return Err(Error::Other("shuffle order missing".into()));
        };
        trainer.reseed_dropout(cfg.seed, step)?;
        let mut grads: Grads = Vec::new();
        let mut loss_sum: Option<Tensor> = None;
        let mut n_examples = 0usize;
        for (pass, divisor) in
            update_passes(cfg, &triplets, order, update * cfg.grad_accum, n_micro)
        {
            let batch: Vec<&Triplet> = pass.iter().map(|&i| &triplets[i]).collect();
            let l = trainer.accumulate_divided(&batch, divisor, &mut grads)?;
            loss_sum = Some(match loss_sum {
                Some(sum) => (sum + l)?,
                None => l,
            });
            n_examples += batch.len();
        }
        // The one host sync of the update's losses.
        let loss = match loss_sum {
            Some(sum) => sum.to_scalar::<f32>()?,
            None => 0.0,
        };
        summary.triplets_seen += n_examples;
        let lr = schedule.lr(step);
        let grad_norm = trainer.apply_update(grads, lr)?;
        let entry = StepLog {
            step,
            lr,
            loss,
            grad_norm,
            examples_per_s: n_examples as f64 / t0.elapsed().as_secs_f64().max(1e-9),
        };
        log_line(&mut log, &cfg.out, &entry)?;
        report_step(obs, &entry, total);
        bar.set_message(format!("loss {loss:.4}"));
        bar.set_position(step as u64);
        summary.steps_done = step;
        summary.last_loss = loss;

        if let (Some(every), Some(eval)) = (cfg.eval_steps, eval.as_ref()) {
            if every > 0 && step % every == 0 {
                let eval_loss = trainer.eval_loss(eval, cfg.batch_size)?;
                obs.metric("eval_loss", step as u64, f64::from(eval_loss));
                log_line(
                    &mut log,
                    &cfg.out,
                    &serde_json::json!({"step": step, "eval_loss": eval_loss}),
                )?;
            }
        }
        let asked = obs.should_stop() && step < total;
        let stop = (cfg.stop_after == Some(step) && step < total) || asked;
        let periodic = cfg
            .save_steps
            .is_some_and(|every| every > 0 && step % every == 0);
        if stop || periodic {
            let state = TrainerState {
                step,
                total_steps: total,
                adam_step: trainer.optimizer().step_count(),
                seed: cfg.seed,
                fingerprint: fingerprint.clone(),
            };
            save_checkpoint(&trainer, cfg, &state)?;
            if obs.checkpoint(step as u64, &checkpoint_dir(&cfg.out, step)) {
                acknowledged = step;
            }
            let pruned = prune_checkpoints(&cfg.out, step, acknowledged)?;
            if !pruned.is_empty() {
                tracing::debug!(?pruned, "older checkpoints removed");
            }
        }
        if stop {
            bar.abandon_with_message(format!("stopped after update {step}"));
            if asked {
                return Err(Error::Stopped(format!(
                    "training stopped after update {step} of {total}; checkpoint saved"
                )));
            }
            return Ok(summary);
        }
    }
    bar.finish();
    obs.progress(total as u64, total as u64, "updates");
    trainer.save_model(&cfg.out)?;
    tracing::info!("final model written to {}", cfg.out.display());
    Ok(summary)
}

/// The forward/backward passes of one update, as (triplet indices, loss divisor): the
/// reference micro-batches `first..first + grad_accum` (of `batch_size` triplets, in `order`)
/// cut into passes of `micro_batch` triplets (sorted by length first when asked), each pass's
/// mean loss divided so that every triplet weighs `1 / (batch_size × grad_accum)`. A partial
/// last micro-batch (no `drop_last`) is its own pass divided by `grad_accum`, as the reference.
/// With the default micro-batch and no length sorting this is exactly the reference's loop.
pub fn update_passes(
    cfg: &TrainConfig,
    triplets: &[Triplet],
    order: &[usize],
    first: usize,
    n_micro: usize,
) -> Vec<(Vec<usize>, f64)> {
    let bs = cfg.batch_size.max(1);
    let lo = (first * bs).min(order.len());
    let hi = ((first + cfg.grad_accum).min(n_micro) * bs).min(order.len());
    let full_end = lo + (hi.saturating_sub(lo) / bs) * bs;
    let mut full: Vec<usize> = order[lo..full_end].to_vec();
    if cfg.sort_by_length {
        full.sort_by_key(|&i| triplets[i].text_len());
    }
    let effective = (bs * cfg.grad_accum) as f64;
    let mut passes: Vec<(Vec<usize>, f64)> = full
        .chunks(cfg.micro_batch.unwrap_or(bs).max(1))
        .map(|c| (c.to_vec(), effective / c.len() as f64))
        .collect();
    if full_end < hi {
        passes.push((order[full_end..hi].to_vec(), cfg.grad_accum as f64));
    }
    passes
}

/// Sends one update's series points and the progress in updates to the observer.
fn report_step(obs: &dyn Observer, entry: &StepLog, total: usize) {
    let step = entry.step as u64;
    obs.metric("loss", step, f64::from(entry.loss));
    obs.metric("lr", step, entry.lr);
    obs.metric("grad_norm", step, f64::from(entry.grad_norm));
    obs.progress(step, total as u64, "updates");
}
