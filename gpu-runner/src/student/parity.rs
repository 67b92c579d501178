//! Student correctness on any device and dtype (`gpu-runner student-parity`): the transformers
//! parity goldens (`parity/make_student_goldens.py`), a gradient for every parameter, and a short
//! training run that must lower the MarginMSE loss. The CPU tests check the same goldens at f32
//! tolerance; this module lets the GPU build check them where it runs.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use serde_json::Value;

use super::encode::PairEncoder;
use super::Student;
use crate::schedule::LinearSchedule;
use crate::train::data::{read_triplets, Triplet};
use crate::train::{Grads, TrainConfig, Trainer};
use crate::{Error, Result};

/// Where the goldens and the tiny model live (the repository layout).
#[derive(Debug, Clone)]
pub struct ParityFiles {
    /// `student_logits.json`.
    pub logits: PathBuf,
    /// `student_train.json`.
    pub train: PathBuf,
    /// The tiny model directory the goldens were made with.
    pub model: PathBuf,
    /// The triplets file the training golden used.
    pub triplets: PathBuf,
}

impl ParityFiles {
    /// The files under a repository root.
    pub fn under(root: &Path) -> ParityFiles {
        let g = root.join("gpu-runner/tests/goldens");
        let f = root.join("gpu-runner/tests/fixtures");
        ParityFiles {
            logits: g.join("student_logits.json"),
            train: g.join("student_train.json"),
            model: f.join("tiny-xlmr"),
            triplets: f.join("triplets.jsonl"),
        }
    }
}

/// What the checks measured.
#[derive(Debug, Clone, Default)]
pub struct ParityReport {
    /// Largest |ours − transformers| over the golden logits.
    pub max_logit_diff: f32,
    /// Largest |loss − PyTorch| / |PyTorch| over the training golden's updates.
    pub max_loss_rel: f64,
    /// Largest relative gradient-norm difference over the same updates.
    pub max_grad_norm_rel: f64,
    /// Parameters without a gradient, or with a zero or non-finite one (the output bias, whose
    /// exact gradient under MarginMSE is zero, is exempt).
    pub missing_grads: Vec<String>,
    /// Parameters checked for a gradient.
    pub params: usize,
    /// Mean MarginMSE (no dropout) over the triplets before and after the short run.
    pub loss_before: f32,
    pub loss_after: f32,
    /// Updates of the short run.
    pub updates: usize,
}

fn golden(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Other(format!("{}: {e}", path.display())))
}

fn field<'a>(v: &'a Value, key: &str, path: &Path) -> Result<&'a Value> {
    v.get(key)
        .ok_or_else(|| Error::Other(format!("{}: missing field {key:?}", path.display())))
}

fn num(v: &Value, key: &str, path: &Path) -> Result<f64> {
    field(v, key, path)?
        .as_f64()
        .ok_or_else(|| Error::Other(format!("{}: field {key:?} is not a number", path.display())))
}

/// Largest |ours − golden| over every golden batch, with `dtype` compute.
pub fn logits_diff(files: &ParityFiles, device: &Device, dtype: DType) -> Result<f32> {
    let path = &files.logits;
    let g = golden(path)?;
    let pairs: Vec<(String, String)> = serde_json::from_value(field(&g, "pairs", path)?.clone())
        .map_err(|e| Error::Other(format!("{}: pairs: {e}", path.display())))?;
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(q, p)| (q.as_str(), p.as_str()))
        .collect();
    let student = Student::load_with_dtype(&files.model, device, 512, dtype)?;
    let batches = field(&g, "batches", path)?
        .as_array()
        .ok_or_else(|| Error::Other(format!("{}: batches is not a list", path.display())))?;
    let mut worst = 0f32;
    for batch in batches {
        let max_length = num(batch, "max_length", path)? as usize;
        let want: Vec<f32> = serde_json::from_value(field(batch, "logits", path)?.clone())
            .map_err(|e| Error::Other(format!("{}: logits: {e}", path.display())))?;
        let encoder = PairEncoder::from_file(
            &files.model.join(super::TOKENIZER_FILE),
            max_length,
            student.config().pad_token_id,
        )?;
        let got = student.logits(&encoder.encode(&refs, device)?)?;
        for (a, b) in got.iter().zip(&want) {
            worst = worst.max((a - b).abs());
        }
    }
    Ok(worst)
}

fn trainer(
    files: &ParityFiles,
    device: &Device,
    bf16: bool,
    settings: Option<&Value>,
) -> Result<Trainer> {
    let out = std::env::temp_dir().join("distillery-student-parity");
    let mut cfg = TrainConfig {
        dropout: false,
        progress: false,
        bf16,
        ..TrainConfig::new(files.model.clone(), files.triplets.clone(), out)
    };
    if let Some(s) = settings {
        let path = &files.train;
        cfg.batch_size = num(s, "batch_size", path)? as usize;
        cfg.grad_accum = num(s, "grad_accum", path)? as usize;
        cfg.lr = num(s, "lr", path)?;
        cfg.warmup_ratio = num(s, "warmup_ratio", path)?;
        cfg.weight_decay = num(s, "weight_decay", path)?;
        cfg.max_grad_norm = num(s, "max_grad_norm", path)?;
        cfg.max_length = num(s, "max_length", path)? as usize;
    }
    Trainer::new(&cfg, device)
}

/// The training golden's updates: largest relative loss and gradient-norm differences.
fn train_diff(files: &ParityFiles, device: &Device, bf16: bool) -> Result<(f64, f64)> {
    let path = &files.train;
    let g = golden(path)?;
    let settings = field(&g, "settings", path)?;
    let mut trainer = trainer(files, device, bf16, Some(settings))?;
    let triplets = read_triplets(&files.triplets)?;
    let (batch, accum) = (
        num(settings, "batch_size", path)? as usize,
        num(settings, "grad_accum", path)? as usize,
    );
    let updates = num(settings, "updates", path)? as usize;
    let schedule = LinearSchedule::new(
        num(settings, "lr", path)?,
        updates,
        num(settings, "warmup_ratio", path)?,
    );
    let steps = field(&g, "steps", path)?
        .as_array()
        .ok_or_else(|| Error::Other(format!("{}: steps is not a list", path.display())))?;
    let (mut loss_rel, mut norm_rel) = (0f64, 0f64);
    for (k, want) in (1..=updates).zip(steps) {
        let mut grads: Grads = Vec::new();
        let mut loss = 0f32;
        for micro in 0..accum {
            let lo = ((k - 1) * accum + micro) * batch;
            let chunk: Vec<&Triplet> = triplets
                .get(lo..lo + batch)
                .ok_or_else(|| {
                    Error::Other("the triplets file is shorter than the golden's".into())
                })?
                .iter()
                .collect();
            loss += trainer.accumulate(&chunk, &mut grads)?;
        }
        let norm = trainer.apply_update(grads, schedule.lr(k))?;
        let (want_loss, want_norm) = (num(want, "loss", path)?, num(want, "grad_norm", path)?);
        loss_rel = loss_rel.max((f64::from(loss) - want_loss).abs() / want_loss.abs());
        norm_rel = norm_rel.max((f64::from(norm) - want_norm).abs() / want_norm.abs());
    }
    Ok((loss_rel, norm_rel))
}

/// Names of parameters whose gradient is missing, zero or not finite after one micro-batch.
fn missing_gradients(
    files: &ParityFiles,
    device: &Device,
    bf16: bool,
) -> Result<(Vec<String>, usize)> {
    let trainer = trainer(files, device, bf16, None)?;
    let triplets = read_triplets(&files.triplets)?;
    let batch: Vec<&Triplet> = triplets.iter().take(4).collect();
    let mut grads: Grads = Vec::new();
    trainer.accumulate(&batch, &mut grads)?;
    let vars = trainer.optimizer().vars();
    let mut missing = Vec::new();
    for (i, (name, _)) in vars.iter().enumerate() {
        let mass = match grads.get(i).and_then(Option::as_ref) {
            Some(g) => g.abs()?.sum_all()?.to_scalar::<f32>()?,
            None => f32::NAN,
        };
        // MarginMSE sees only s(q,pos) − s(q,neg): the output bias cancels exactly.
        let exempt = name == "classifier.out_proj.bias" && mass == 0.0;
        if !(exempt || (mass > 0.0 && mass.is_finite())) {
            missing.push(format!("{name} (|grad| sum {mass})"));
        }
    }
    Ok((missing, vars.len()))
}

/// `updates` updates of 4 triplets (lr 1e-3, 10 % warmup) over the fixture triplets: mean loss
/// (no dropout) before and after.
fn short_run(
    files: &ParityFiles,
    device: &Device,
    bf16: bool,
    updates: usize,
) -> Result<(f32, f32)> {
    let mut trainer = trainer(files, device, bf16, None)?;
    let triplets = read_triplets(&files.triplets)?;
    let before = trainer.eval_loss(&triplets, 8)?;
    let schedule = LinearSchedule::new(1e-3, updates, 0.1);
    let n = triplets.len().max(1);
    for k in 1..=updates {
        let batch: Vec<&Triplet> = (0..4).map(|j| &triplets[(4 * k + j) % n]).collect();
        let mut grads: Grads = Vec::new();
        trainer.accumulate(&batch, &mut grads)?;
        trainer.apply_update(grads, schedule.lr(k))?;
    }
    Ok((before, trainer.eval_loss(&triplets, 8)?))
}

/// Runs every check with `dtype` compute (bf16 trains with f32 master weights).
pub fn check(
    files: &ParityFiles,
    device: &Device,
    dtype: DType,
    updates: usize,
) -> Result<ParityReport> {
    let bf16 = dtype == DType::BF16;
    let max_logit_diff = logits_diff(files, device, dtype)?;
    let (max_loss_rel, max_grad_norm_rel) = train_diff(files, device, bf16)?;
    let (missing_grads, params) = missing_gradients(files, device, bf16)?;
    let (loss_before, loss_after) = short_run(files, device, bf16, updates)?;
    Ok(ParityReport {
        max_logit_diff,
        max_loss_rel,
        max_grad_norm_rel,
        missing_grads,
        params,
        loss_before,
        loss_after,
        updates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_f32_passes_every_check() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let report = check(&ParityFiles::under(&root), &Device::Cpu, DType::F32, 30).unwrap();
        assert!(report.max_logit_diff < 1e-4, "{report:?}");
        assert!(
            report.max_loss_rel < 1e-5 && report.max_grad_norm_rel < 1e-5,
            "{report:?}"
        );
        assert!(report.missing_grads.is_empty(), "{report:?}");
        assert!(report.loss_after < report.loss_before, "{report:?}");
    }
}
