//! Benchmarks of CPU stages on synthetic data shaped like the real dataset (spec §F: about 30
//! passages per query, queries of about 53 characters and passages of about 44).

use std::path::Path;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::scores::{ScoreRecord, ScoreWriter};
use crate::triplets::{build_triplets, read_groups, write_triplets, TripletOptions};
use crate::{Error, Result};

/// What to generate for a benchmark.
#[derive(Debug, Clone, Copy)]
pub struct BenchConfig {
    /// Score lines in total.
    pub n_lines: usize,
    /// Passages per query (the last query may have fewer).
    pub passages_per_query: usize,
    /// Seed of the synthetic data.
    pub seed: u64,
}

/// Timings of one benchmark run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Queries generated.
    pub n_queries: usize,
    /// Size of the generated input file.
    pub input_bytes: u64,
    /// Triplets produced.
    pub n_triplets: usize,
    /// `(phase, seconds)`, ending with the whole stage.
    pub phases: Vec<(String, f64)>,
}

/// Writes a synthetic teacher-score file of `config.n_lines` lines to `path`; returns the number
/// of queries.
pub fn write_synthetic_scores(path: &Path, config: &BenchConfig) -> Result<usize> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let per_query = config.passages_per_query.max(1);
    let mut writer = ScoreWriter::create(path)?;
    let mut rec = ScoreRecord {
        query: String::new(),
        passage: String::new(),
        score: 0.0,
    };
    for line_idx in 0..config.n_lines {
        let query_idx = line_idx / per_query;
        if line_idx % per_query == 0 {
            rec.query = text(&mut rng, &format!("how do I {query_idx}"), 53);
        }
        rec.passage = text(&mut rng, &format!("passage {line_idx}"), 44);
        // Like the teacher: a float64 difference of two float32 logits.
        let yes: f32 = rng.random_range(-12.0..12.0);
        let no: f32 = rng.random_range(-12.0..12.0);
        rec.score = f64::from(yes) - f64::from(no);
        writer.write(&rec)?;
    }
    writer.commit()?;
    Ok(config.n_lines.div_ceil(per_query))
}

fn text(rng: &mut StdRng, prefix: &str, mean_len: usize) -> String {
    const WORDS: [&str; 8] = [
        "java", "python", "list", "error", "string", "the", "how", "é",
    ];
    let target = rng.random_range(mean_len / 2..mean_len * 3 / 2);
    let mut s = prefix.to_string();
    while s.len() < target {
        s.push(' ');
        s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    s
}

/// Generates a synthetic score file in a temp dir and times the triplets stage on it with the
/// reference options.
pub fn bench_triplets(config: &BenchConfig) -> Result<BenchReport> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let input = dir.path().join("scores.jsonl");
    let output = dir.path().join("triplets.jsonl");
    let n_queries = write_synthetic_scores(&input, config)?;
    let input_bytes = std::fs::metadata(&input)
        .map_err(|e| Error::io(&input, e))?
        .len();

    let start = Instant::now();
    let (groups, _) = read_groups(&input, false)?;
    let read_s = start.elapsed().as_secs_f64();
    let t = Instant::now();
    let (triplets, _) = build_triplets(&groups, &TripletOptions::default());
    let build_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    write_triplets(&output, &triplets)?;
    let write_s = t.elapsed().as_secs_f64();
    let total_s = start.elapsed().as_secs_f64();
    Ok(BenchReport {
        n_queries,
        input_bytes,
        n_triplets: triplets.len(),
        phases: vec![
            ("read + group".into(), read_s),
            ("sort + build".into(), build_s),
            ("write (atomic)".into(), write_s),
            ("triplets stage total".into(), total_s),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bench_runs_and_counts() {
        let config = BenchConfig {
            n_lines: 95,
            passages_per_query: 30,
            seed: 1,
        };
        let report = bench_triplets(&config).unwrap();
        assert_eq!(report.n_queries, 4);
        assert_eq!(report.phases.len(), 4);
        // Three full groups give at most 32 triplets each; the 5-record group at most 4+4+3+2+1.
        assert!(report.n_triplets > 0 && report.n_triplets <= 3 * 32 + 14);
    }
}
