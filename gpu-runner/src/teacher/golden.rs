//! The teacher parity goldens (`gpu-runner/tests/goldens/teacher_tiny.json`, made with
//! transformers) and their check on any device and dtype.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::new_model::{self, Preset};
use super::{Batching, Teacher, TeacherOptions};
use crate::{Error, Result};

/// A golden file: the tiny model's seed and config hash, and transformers' scores.
#[derive(Debug, Clone, Deserialize)]
pub struct Golden {
    pub seed: u64,
    pub config_sha256: String,
    pub prefix_ids: Vec<u32>,
    pub suffix_ids: Vec<u32>,
    pub pairs: Vec<GoldenPair>,
}

/// One golden pair: its texts, full prompt ids and transformers' `z_yes − z_no`.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenPair {
    pub query: String,
    pub passage: String,
    pub ids: Vec<u32>,
    pub score: f32,
}

impl Golden {
    /// Reads a golden file.
    pub fn read(path: &Path) -> Result<Golden> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::input(path, e.line(), "golden", e.to_string()))
    }
}

/// How far a teacher's scores are from the goldens.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenReport {
    pub pairs: usize,
    pub max_abs_diff: f32,
    pub max_abs_score: f32,
}

/// Writes the tiny model with the golden's seed into `dir`, loads it with `options` and
/// compares its scores (and prompt ids) with the golden.
pub fn check(
    golden: &Golden,
    tokenizer: &Path,
    dir: &Path,
    options: TeacherOptions,
) -> Result<GoldenReport> {
    new_model::write(Preset::Tiny, tokenizer, dir, golden.seed)?;
    let config_path = dir.join("config.json");
    let config = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let sha = hex::encode(Sha256::digest(&config));
    if sha != golden.config_sha256 {
        return Err(Error::Other(format!(
            "the tiny preset's config hash {sha} differs from the golden's {}: regenerate the goldens",
            golden.config_sha256
        )));
    }
    let teacher = Teacher::load(dir, options)?;
    if teacher.prompt().prefix_ids() != golden.prefix_ids
        || teacher.prompt().suffix_ids() != golden.suffix_ids
    {
        return Err(Error::Other(
            "prompt prefix or suffix ids differ from the golden's".into(),
        ));
    }
    let pairs: Vec<(&str, &str)> = golden
        .pairs
        .iter()
        .map(|p| (p.query.as_str(), p.passage.as_str()))
        .collect();
    for (p, (q, d)) in golden.pairs.iter().zip(&pairs) {
        if teacher.prompt().build(q, d)? != p.ids {
            return Err(Error::Other(format!(
                "prompt ids of query {q:?} differ from the golden's"
            )));
        }
    }
    let scores = teacher.score_pairs(&pairs, Batching::Tokens(4096))?;
    if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
        return Err(Error::Other(format!(
            "the teacher scored a golden pair {bad}"
        )));
    }
    let max_abs_diff = golden
        .pairs
        .iter()
        .zip(&scores)
        .fold(0.0f32, |m, (p, s)| m.max((s - p.score).abs()));
    Ok(GoldenReport {
        pairs: scores.len(),
        max_abs_diff,
        max_abs_score: scores.iter().fold(0.0f32, |m, s| m.max(s.abs())),
    })
}
