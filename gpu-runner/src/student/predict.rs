//! `predict`: student logits for every (query, passage) pair of an MTEB reranking file, written
//! in the teacher-score format so that `metrics` evaluates any model the same way.

use std::path::Path;

use candle_core::{DType, Device};

use super::Student;
use crate::data::read_samples;
use crate::scores::{ScoreRecord, ScoreWriter};
use crate::Result;

/// Settings of one prediction run.
#[derive(Debug, Clone)]
pub struct PredictConfig {
    /// Pairs per forward pass (batches are sorted by length).
    pub batch_size: usize,
    /// Token budget per pair; `None` as in [`Student::load`].
    pub max_length: Option<usize>,
    /// Matmul dtype: f32 (the reference's evaluation) or bf16 (on CUDA, the packed
    /// padding-free path for pairs of at most 128 tokens).
    pub dtype: DType,
}

/// Scores every pair of `data` (flattened order: per line positives, then negatives) with the
/// model in `model_dir` and writes raw logits to `output` atomically. `on_batch(n)` is called
/// after each batch of `n` pairs. Returns the number of pairs written.
pub fn predict_file(
    model_dir: &Path,
    data: &Path,
    output: &Path,
    cfg: &PredictConfig,
    device: &Device,
    on_batch: impl FnMut(usize),
) -> Result<usize> {
    let samples = read_samples(data)?;
    let student = Student::load_with_dtype(model_dir, device, cfg.max_length, cfg.dtype)?;
    predict_samples(&student, &samples, output, cfg, on_batch)
}

/// [`predict_file`] with the model loaded and the data read.
pub fn predict_samples(
    student: &Student,
    samples: &[crate::data::Sample],
    output: &Path,
    cfg: &PredictConfig,
    on_batch: impl FnMut(usize),
) -> Result<usize> {
    let pairs: Vec<(&str, &str)> = samples.iter().flat_map(|s| s.pairs()).collect();
    let scores = student.score_pairs_with(&pairs, cfg.batch_size, on_batch)?;
    let mut writer = ScoreWriter::create(output)?;
    for ((query, passage), score) in pairs.iter().zip(scores) {
        writer.write(&ScoreRecord {
            query: query.to_string(),
            passage: passage.to_string(),
            score: score as f64,
        })?;
    }
    writer.commit()?;
    Ok(pairs.len())
}

/// The number of pairs `data` holds, for progress bars.
pub fn count_pairs(data: &Path) -> Result<usize> {
    Ok(read_samples(data)?.iter().map(|s| s.n_pairs()).sum())
}
