//! Teacher scoring benchmark: a random-weight Qwen3-Reranker on the device, scoring prompts with
//! the shape of StackOverflowDupQuestions, in three modes.
//!
//! * `no_reuse`: every pair's whole prompt is run (length-bucketed batches);
//! * `prefix_reuse`: the shared prompt prefix (system prompt and instruction) runs once, every
//!   pair runs only its query and document;
//! * `query_reuse`: additionally each query's tokens run once per batch and their keys and
//!   values serve all of the query's documents (PyTorch's best reference, 987 pairs/s);
//! * `query_reuse_bucketed`: the same, with documents length-bucketed across queries.
//!
//! All modes score the same pairs, so their scores are compared as a correctness check.

use std::time::Instant;

use candle_core::{DType, Device};
use rand::{Rng, SeedableRng};

use super::{BenchRow, PEAK_BF16_FLOPS};
use crate::cuda_mem::MemoryPool;
use crate::teacher::new_model::{self, Preset};
use crate::teacher::qwen3::{Config, Qwen3Scorer};
use crate::teacher::{plan_batches, reuse, Batching};
use crate::Result;

/// Tokens of `\n<Document>:` between a query and its document.
const DOCUMENT_TAG: usize = 4;
/// Tokens of the assistant-turn suffix after the document.
const SUFFIX: usize = 9;

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct TeacherBenchOptions {
    pub preset: Preset,
    pub dtype: DType,
    pub device: Device,
    /// Queries in the workload.
    pub queries: usize,
    /// Candidate documents per query (StackOverflowDupQuestions has about 30).
    pub docs_per_query: usize,
    /// Tokens of the shared prompt prefix (61 with the real tokenizer and instruction).
    pub shared_len: usize,
    /// Pairs per batch; `query_reuse` rounds it down to whole queries.
    pub batch: usize,
    /// Seed of the synthetic token ids.
    pub seed: u64,
    /// `Some((query, rest))`: every query segment and every pair's rest has exactly these token
    /// counts (the PyTorch reference's shapes are 16 and 20); `None`: StackOverflow titles.
    pub fixed_lengths: Option<(usize, usize)>,
}

/// Synthetic prompts: random ids with the token lengths of the real ones.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The shared prefix every prompt starts with.
    pub shared: Vec<u32>,
    /// Per query: its title and `\n<Document>:`.
    pub queries: Vec<Vec<u32>>,
    /// Per query: each document's title and the suffix.
    pub docs: Vec<Vec<Vec<u32>>>,
}

/// Token length of a StackOverflow title (10–150 characters): triangular on 3..35, mode 9,
/// mean about 16.
fn title_len(rng: &mut impl Rng) -> usize {
    let (a, c, b) = (3.0f64, 9.0f64, 35.0f64);
    let u: f64 = rng.random();
    let x = if u < (c - a) / (b - a) {
        a + (u * (b - a) * (c - a)).sqrt()
    } else {
        b - ((1.0 - u) * (b - a) * (b - c)).sqrt()
    };
    x.round() as usize
}

impl Workload {
    /// `queries` queries with `docs_per_query` documents each, after `shared_len` shared tokens.
    pub fn stackoverflow_like(
        queries: usize,
        docs_per_query: usize,
        shared_len: usize,
        seed: u64,
    ) -> Workload {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut ids =
            |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..151_000)).collect() };
        let shared = ids(shared_len);
        let mut lens = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        let queries_ids: Vec<Vec<u32>> = (0..queries)
            .map(|_| ids(title_len(&mut lens) + DOCUMENT_TAG))
            .collect();
        let docs = (0..queries)
            .map(|_| {
                (0..docs_per_query)
                    .map(|_| ids(title_len(&mut lens) + SUFFIX))
                    .collect()
            })
            .collect();
        Workload {
            shared,
            queries: queries_ids,
            docs,
        }
    }

    /// Like [`Workload::stackoverflow_like`] but with every query segment `query_len` and every
    /// document part `rest_len` tokens long.
    pub fn fixed(
        queries: usize,
        docs_per_query: usize,
        shared_len: usize,
        (query_len, rest_len): (usize, usize),
        seed: u64,
    ) -> Workload {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut ids =
            |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..151_000)).collect() };
        let shared = ids(shared_len);
        let queries_ids: Vec<Vec<u32>> = (0..queries).map(|_| ids(query_len)).collect();
        let docs = (0..queries)
            .map(|_| (0..docs_per_query).map(|_| ids(rest_len)).collect())
            .collect();
        Workload {
            shared,
            queries: queries_ids,
            docs,
        }
    }

    fn for_options(opts: &TeacherBenchOptions, queries: usize, seed: u64) -> Workload {
        match opts.fixed_lengths {
            Some(lens) => {
                Workload::fixed(queries, opts.docs_per_query, opts.shared_len, lens, seed)
            }
            None => {
                Workload::stackoverflow_like(queries, opts.docs_per_query, opts.shared_len, seed)
            }
        }
    }

    /// Number of (query, document) pairs.
    pub fn pairs(&self) -> usize {
        self.docs.iter().map(Vec::len).sum()
    }

    /// Mean full prompt length in tokens.
    pub fn mean_prompt_len(&self) -> f64 {
        let total: usize = self
            .docs
            .iter()
            .zip(&self.queries)
            .flat_map(|(ds, q)| {
                ds.iter()
                    .map(move |d| self.shared.len() + q.len() + d.len())
            })
            .sum();
        total as f64 / self.pairs().max(1) as f64
    }

    /// `(query index, document index)` of every pair, in score order.
    fn pair_index(&self) -> Vec<(usize, usize)> {
        self.docs
            .iter()
            .enumerate()
            .flat_map(|(q, ds)| (0..ds.len()).map(move |d| (q, d)))
            .collect()
    }
}

/// Model FLOPs of running `len` tokens at positions `start..start + len`.
fn flops(cfg: &Config, start: usize, len: usize) -> f64 {
    let (h, i, dh) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
    let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    let linear = 2.0 * (2 * h * nh * dh + 2 * h * nkv * dh + 3 * h * i) as f64;
    // Token at position t attends to t + 1 keys: QKᵀ and PV are 2·2·H·Dh FLOPs per key.
    let keys: f64 = (start..start + len).map(|t| (t + 1) as f64).sum();
    cfg.num_hidden_layers as f64 * (len as f64 * linear + 4.0 * (nh * dh) as f64 * keys)
}

/// Scores of every pair in [`Workload::pair_index`] order, and the model FLOPs spent.
type ModeRun = (Vec<f32>, f64);

fn run_no_reuse(model: &Qwen3Scorer, cfg: &Config, w: &Workload, batch: usize) -> Result<ModeRun> {
    let index = w.pair_index();
    let prompts: Vec<Vec<u32>> = index
        .iter()
        .map(|&(q, d)| [&w.shared[..], &w.queries[q], &w.docs[q][d]].concat())
        .collect();
    let lengths: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let mut scores = vec![0.0f32; prompts.len()];
    for b in plan_batches(&lengths, Batching::Size(batch)) {
        let seqs: Vec<&[u32]> = b.iter().map(|&i| prompts[i].as_slice()).collect();
        for (&i, s) in b.iter().zip(model.score_batch(None, &seqs)?) {
            scores[i] = s;
        }
    }
    let total = lengths.iter().map(|&n| flops(cfg, 0, n)).sum();
    Ok((scores, total))
}

fn run_prefix_reuse(
    model: &Qwen3Scorer,
    cfg: &Config,
    w: &Workload,
    batch: usize,
) -> Result<ModeRun> {
    let prefix = model.prefix(&w.shared)?;
    let p = w.shared.len();
    let index = w.pair_index();
    let rests: Vec<Vec<u32>> = index
        .iter()
        .map(|&(q, d)| [&w.queries[q][..], &w.docs[q][d]].concat())
        .collect();
    let lengths: Vec<usize> = rests.iter().map(Vec::len).collect();
    let mut scores = vec![0.0f32; rests.len()];
    for b in plan_batches(&lengths, Batching::Size(batch)) {
        let seqs: Vec<&[u32]> = b.iter().map(|&i| rests[i].as_slice()).collect();
        for (&i, s) in b.iter().zip(model.score_batch(Some(&prefix), &seqs)?) {
            scores[i] = s;
        }
    }
    let total = flops(cfg, 0, p) + lengths.iter().map(|&n| flops(cfg, p, n)).sum::<f64>();
    Ok((scores, total))
}

fn run_query_reuse(
    model: &Qwen3Scorer,
    cfg: &Config,
    w: &Workload,
    batch: usize,
) -> Result<ModeRun> {
    let prefix = model.prefix(&w.shared)?;
    let p = w.shared.len();
    let per_query = w.docs.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let queries_per_batch = (batch / per_query).max(1);
    let mut scores = Vec::with_capacity(w.pairs());
    let mut total = flops(cfg, 0, p);
    let all: Vec<usize> = (0..w.queries.len()).collect();
    for group in all.chunks(queries_per_batch) {
        let segs: Vec<&[u32]> = group.iter().map(|&q| w.queries[q].as_slice()).collect();
        let kv = model.segments(Some(&prefix), &segs)?;
        let mut owner = Vec::new();
        let mut seqs: Vec<&[u32]> = Vec::new();
        for (slot, &q) in group.iter().enumerate() {
            let ql = w.queries[q].len();
            total += flops(cfg, p, ql);
            for d in &w.docs[q] {
                owner.push(slot);
                seqs.push(d);
                total += flops(cfg, p + ql, d.len());
            }
        }
        scores.extend(model.score_in_segments(Some(&prefix), &kv, &owner, &seqs)?);
    }
    Ok((scores, total))
}

/// Query-level reuse with length-bucketed documents, through the teacher's production path
/// ([`reuse::score_split`]): the segments of up to [`reuse::SEGMENT_CHUNK`] queries run at once,
/// then their documents are sorted by length and batched across queries.
fn run_query_reuse_bucketed(
    model: &Qwen3Scorer,
    cfg: &Config,
    w: &Workload,
    batch: usize,
) -> Result<ModeRun> {
    let prefix = model.prefix(&w.shared)?;
    let p = w.shared.len();
    let index = w.pair_index();
    let split = reuse::QuerySplit {
        segments: w.queries.clone(),
        owner: index.iter().map(|&(q, _)| q).collect(),
        rests: index.iter().map(|&(q, d)| w.docs[q][d].clone()).collect(),
    };
    let scores = reuse::score_split(model, Some(&prefix), &split, Batching::Size(batch))?;
    let total = flops(cfg, 0, p)
        + w.queries
            .iter()
            .map(|q| flops(cfg, p, q.len()))
            .sum::<f64>()
        + index
            .iter()
            .map(|&(q, d)| flops(cfg, p + w.queries[q].len(), w.docs[q][d].len()))
            .sum::<f64>();
    Ok((scores, total))
}

/// The rows of the teacher benchmark and, per reuse mode, the largest score difference to
/// `no_reuse` (the same pairs, so only rounding may differ).
pub struct TeacherBenchReport {
    pub rows: Vec<BenchRow>,
    pub max_diff: Vec<(String, f32)>,
    pub mean_prompt_len: f64,
}

/// Runs the three modes once untimed (warm-up: kernel loading, allocator) and once timed.
pub fn run(opts: &TeacherBenchOptions) -> Result<TeacherBenchReport> {
    let pool = MemoryPool::of(&opts.device)?;
    let (cfg, vb, score_weight) =
        new_model::random_on_device(opts.preset, opts.dtype, &opts.device)?;
    let model = Qwen3Scorer::load(&cfg, vb, score_weight)?;
    let work = Workload::for_options(opts, opts.queries, opts.seed);
    let warm_queries = (opts.batch / opts.docs_per_query.max(1)).max(1);
    let warm = Workload::for_options(opts, warm_queries, opts.seed + 1);
    type Runner = fn(&Qwen3Scorer, &Config, &Workload, usize) -> Result<ModeRun>;
    let modes: [(&str, Runner); 4] = [
        ("no_reuse", run_no_reuse),
        ("prefix_reuse", run_prefix_reuse),
        ("query_reuse", run_query_reuse),
        ("query_reuse_bucketed", run_query_reuse_bucketed),
    ];
    let mut rows = Vec::new();
    let mut all_scores = Vec::new();
    for (name, runner) in modes {
        runner(&model, &cfg, &warm, opts.batch)?;
        pool.reset_peak()?;
        let start = Instant::now();
        let (scores, total_flops) = runner(&model, &cfg, &work, opts.batch)?;
        let seconds = start.elapsed().as_secs_f64();
        tracing::info!(mode = name, seconds, "teacher bench mode done");
        rows.push(BenchRow {
            workload: if opts.fixed_lengths.is_some() {
                "teacher-fx".into()
            } else {
                "teacher".into()
            },
            mode: name.into(),
            batch: opts.batch,
            items: scores.len(),
            seconds,
            items_per_s: scores.len() as f64 / seconds,
            mfu: total_flops / seconds / PEAK_BF16_FLOPS,
            peak_gib: pool.peak_bytes()?.map(|b| b as f64 / (1u64 << 30) as f64),
        });
        all_scores.push((name, scores));
    }
    let base = &all_scores[0].1;
    let max_diff = all_scores[1..]
        .iter()
        .map(|(name, s)| {
            let d = s
                .iter()
                .zip(base)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            (name.to_string(), d)
        })
        .collect();
    Ok(TeacherBenchReport {
        rows,
        max_diff,
        mean_prompt_len: work.mean_prompt_len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_has_the_stackoverflow_shape() {
        let w = Workload::stackoverflow_like(200, 30, 61, 0);
        assert_eq!(w.pairs(), 6000);
        let mean = w.mean_prompt_len();
        assert!((95.0..115.0).contains(&mean), "mean prompt length {mean}");
        let lens: Vec<usize> = w.queries.iter().map(|q| q.len() - DOCUMENT_TAG).collect();
        assert!(lens.iter().all(|&l| (3..=35).contains(&l)));
    }

    #[test]
    fn every_mode_gives_the_same_scores_on_the_tiny_model() {
        let opts = TeacherBenchOptions {
            preset: Preset::Tiny,
            dtype: DType::F32,
            device: Device::Cpu,
            queries: 5,
            docs_per_query: 3,
            shared_len: 7,
            batch: 7,
            seed: 3,
            fixed_lengths: None,
        };
        let report = run(&opts).unwrap();
        assert_eq!(report.rows.len(), 4);
        assert!(report.rows.iter().all(|r| r.items == 15 && r.mfu > 0.0));
        for (mode, diff) in &report.max_diff {
            assert!(*diff < 1e-4, "{mode} differs from no_reuse by {diff}");
        }
    }
}
