//! Reranking metrics with sentence-transformers v5 `CrossEncoderRerankingEvaluator` semantics
//! (spec §A.1, §A.3, §A.4).
//!
//! Per sample, the documents are `positive + negative` with relevance by position. Then:
//! - **AP** is scikit-learn's `average_precision_score`: a step integral over groups of equal
//!   score, every member of a tied group credited with the precision at the group's end;
//! - **NDCG@k** is scikit-learn's `ndcg_score(k=k)` with tie-averaged DCG;
//! - **MRR@k** ranks by a *stable* ascending sort reversed, so tied documents come out in
//!   descending original index (negatives before positives: the pessimistic canonical rule).
//!
//! [`Variant::St`] counts samples without positives as 0 and fails, like scikit-learn, on a
//! sample with a single document. [`Variant::Mteb`] (mteb 1.x) skips samples without positives
//! or without negatives. [`ScoreSpace::SigmoidF32`] maps each score to torch's float32
//! `1/(1+exp(-x))` first, which is what `CrossEncoder.predict` returns; saturation there can tie
//! documents whose logits differ, so every evaluation counts the queries where a relevant and an
//! irrelevant document tie.

use std::cmp::Ordering;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::data::Sample;
use crate::io::AtomicFile;
use crate::scores::read_scores_per_sample;
use crate::{Error, Result};

/// The space in which scores are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreSpace {
    /// Float32 `1/(1+exp(-x))` of the float32 logit, as sentence-transformers' `predict`.
    #[default]
    SigmoidF32,
    /// The scores as given.
    Logit,
}

/// Which evaluator's sample handling to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// sentence-transformers v5: no sample skipped, zero-positive samples count as 0.
    #[default]
    St,
    /// mteb 1.x: samples with no positives or no negatives are skipped.
    Mteb,
}

/// Options of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricOptions {
    /// Cut-off of MRR and NDCG.
    pub at_k: usize,
    /// Score space.
    pub score_space: ScoreSpace,
    /// Sample handling.
    pub variant: Variant,
}

impl Default for MetricOptions {
    /// The reference evaluation: `at_k=10`, float32 sigmoid, sentence-transformers.
    fn default() -> Self {
        MetricOptions {
            at_k: 10,
            score_space: ScoreSpace::SigmoidF32,
            variant: Variant::St,
        }
    }
}

/// torch's float32 sigmoid of a logit: `1/(1+exp(-x))` computed in f32.
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Maps raw scores into `space`.
pub fn to_space(scores: &[f64], space: ScoreSpace) -> Vec<f64> {
    match space {
        ScoreSpace::Logit => scores.to_vec(),
        ScoreSpace::SigmoidF32 => scores
            .iter()
            .map(|&x| f64::from(sigmoid_f32(x as f32)))
            .collect(),
    }
}

/// AP, MRR@k and NDCG@k of one ranked list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Triple {
    /// Average precision.
    pub ap: f64,
    /// Reciprocal rank of the first relevant document within the top k, else 0.
    pub mrr: f64,
    /// Tie-averaged NDCG@k.
    pub ndcg: f64,
}

/// The 1-based rank of every document under the stable-reversed rule: higher scores first,
/// and among equal scores the later document first.
pub fn ranks(scores: &[f64]) -> Vec<usize> {
    let order = ranking(scores);
    let mut ranks = vec![0; scores.len()];
    for (pos, &doc) in order.iter().enumerate() {
        ranks[doc] = pos + 1;
    }
    ranks
}

/// Document indices from best to worst: `argsort(scores, stable)[::-1]`.
fn ranking(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| cmp(scores[a], scores[b]));
    order.reverse();
    order
}

fn cmp(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// The metrics of one sample with at least one relevant document (`relevant[i]` for document
/// `i`), with scikit-learn's tie handling for AP and NDCG and the stable-reversed rule for MRR.
pub fn sample_metrics(relevant: &[bool], scores: &[f64], at_k: usize) -> Triple {
    Triple {
        ap: average_precision(relevant, scores),
        mrr: reciprocal_rank(relevant, scores, at_k),
        ndcg: ndcg(relevant, scores, at_k),
    }
}

fn reciprocal_rank(relevant: &[bool], scores: &[f64], at_k: usize) -> f64 {
    ranking(scores)
        .iter()
        .take(at_k)
        .position(|&doc| relevant[doc])
        .map_or(0.0, |pos| 1.0 / (pos + 1) as f64)
}

/// Groups of equal score in descending score order, as `(start, end)` ranges of `order`.
fn tie_groups(order: &[usize], scores: &[f64]) -> Vec<(usize, usize)> {
    let mut groups = Vec::new();
    let mut start = 0;
    for end in 1..=order.len() {
        if end == order.len() || scores[order[end]] != scores[order[start]] {
            groups.push((start, end));
            start = end;
        }
    }
    groups
}

fn descending(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| cmp(scores[b], scores[a]));
    order
}

fn average_precision(relevant: &[bool], scores: &[f64]) -> f64 {
    let n_relevant = relevant.iter().filter(|&&r| r).count() as f64;
    let order = descending(scores);
    let (mut tp, mut prev_recall, mut ap) = (0usize, 0.0, 0.0);
    for (start, end) in tie_groups(&order, scores) {
        tp += order[start..end].iter().filter(|&&d| relevant[d]).count();
        let recall = tp as f64 / n_relevant;
        ap += (recall - prev_recall) * (tp as f64 / end as f64);
        prev_recall = recall;
    }
    ap.max(0.0)
}

/// scikit-learn's DCG discount `1/log2(i+2)`, zero from rank `at_k` on.
fn discount(i: usize, at_k: usize) -> f64 {
    if i < at_k {
        1.0 / ((i as f64 + 2.0).ln() / 2f64.ln())
    } else {
        0.0
    }
}

fn ndcg(relevant: &[bool], scores: &[f64], at_k: usize) -> f64 {
    let order = descending(scores);
    let mut cumsum = Vec::with_capacity(order.len());
    let mut acc = 0.0;
    for i in 0..order.len() {
        acc += discount(i, at_k);
        cumsum.push(acc);
    }
    let mut dcg = 0.0;
    for (start, end) in tie_groups(&order, scores) {
        let gain = order[start..end].iter().filter(|&&d| relevant[d]).count() as f64;
        let mean_gain = gain / (end - start) as f64;
        let before = if start == 0 { 0.0 } else { cumsum[start - 1] };
        dcg += mean_gain * (cumsum[end - 1] - before);
    }
    let n_relevant = relevant.iter().filter(|&&r| r).count();
    let idcg: f64 = (0..n_relevant.min(at_k)).map(|i| discount(i, at_k)).sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

/// Whether some relevant and some irrelevant document have exactly the same score.
pub fn has_relevant_tie(relevant: &[bool], scores: &[f64]) -> bool {
    let order = descending(scores);
    tie_groups(&order, scores).iter().any(|&(start, end)| {
        let group = &order[start..end];
        group.iter().any(|&d| relevant[d]) && group.iter().any(|&d| !relevant[d])
    })
}

/// The evaluation of one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryMetrics {
    /// 0-based index of the sample in the data file.
    pub sample_idx: usize,
    /// The query text.
    pub query: String,
    /// Number of positives.
    pub n_positive: usize,
    /// Number of negatives.
    pub n_negative: usize,
    /// Whether the sample counts in the means (mteb skips some).
    pub included: bool,
    /// AP, MRR@k, NDCG@k (0 for samples without positives).
    #[serde(flatten)]
    pub metrics: Triple,
    /// Whether a relevant and an irrelevant document tie.
    pub relevant_tie: bool,
    /// 1-based rank of each document (positives then negatives) under the MRR rule.
    pub ranks: Vec<usize>,
}

/// Means over the included samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Mean AP.
    pub map: f64,
    /// Mean MRR@k.
    pub mrr: f64,
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Samples in the means.
    pub queries: usize,
    /// Samples skipped (mteb variant only).
    pub skipped: usize,
    /// Included samples where a relevant and an irrelevant document tie.
    pub relevant_ties: usize,
}

/// Per-sample metrics and their means.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// One entry per sample, in data order.
    pub per_query: Vec<QueryMetrics>,
    /// The means.
    pub summary: Summary,
}

/// Evaluates `scores[i]` (one raw score per pair of `samples[i]`, flattened order) under `opts`.
/// Errors on a length mismatch and, for [`Variant::St`], on a single-document sample.
pub fn evaluate(
    samples: &[Sample],
    scores: &[Vec<f64>],
    opts: &MetricOptions,
) -> Result<Evaluation> {
    if samples.len() != scores.len() {
        return Err(Error::Other(format!(
            "{} samples but {} score lists",
            samples.len(),
            scores.len()
        )));
    }
    let per_query = samples
        .iter()
        .zip(scores)
        .enumerate()
        .map(|(idx, (sample, raw))| evaluate_sample(idx, sample, raw, opts))
        .collect::<Result<Vec<_>>>()?;
    Ok(Evaluation {
        summary: summarize(&per_query),
        per_query,
    })
}

fn evaluate_sample(
    sample_idx: usize,
    sample: &Sample,
    raw: &[f64],
    opts: &MetricOptions,
) -> Result<QueryMetrics> {
    let (n_positive, n_negative) = (sample.positive.len(), sample.negative.len());
    if raw.len() != n_positive + n_negative {
        return Err(Error::Other(format!(
            "sample {}: {} scores for {} documents",
            sample_idx + 1,
            raw.len(),
            n_positive + n_negative
        )));
    }
    let scores = to_space(raw, opts.score_space);
    let relevant: Vec<bool> = (0..scores.len()).map(|i| i < n_positive).collect();
    let included = match opts.variant {
        Variant::St => true,
        Variant::Mteb => n_positive > 0 && n_negative > 0,
    };
    if opts.variant == Variant::St && n_positive > 0 && scores.len() == 1 {
        return Err(Error::Other(format!(
            "sample {} ({:?}) has a single document: NDCG is undefined and sentence-transformers \
             aborts the evaluation here (use --variant mteb to skip such samples)",
            sample_idx + 1,
            sample.query
        )));
    }
    let metrics = if n_positive == 0 {
        Triple {
            ap: 0.0,
            mrr: 0.0,
            ndcg: 0.0,
        }
    } else {
        sample_metrics(&relevant, &scores, opts.at_k)
    };
    Ok(QueryMetrics {
        sample_idx,
        query: sample.query.clone(),
        n_positive,
        n_negative,
        included,
        metrics,
        relevant_tie: has_relevant_tie(&relevant, &scores),
        ranks: ranks(&scores),
    })
}

/// Means over the included entries of `per_query` (`np.mean` in float64).
pub fn summarize(per_query: &[QueryMetrics]) -> Summary {
    let included: Vec<&QueryMetrics> = per_query.iter().filter(|q| q.included).collect();
    let mean = |f: fn(&Triple) -> f64| {
        if included.is_empty() {
            0.0
        } else {
            included.iter().map(|q| f(&q.metrics)).sum::<f64>() / included.len() as f64
        }
    };
    Summary {
        map: mean(|t| t.ap),
        mrr: mean(|t| t.mrr),
        ndcg: mean(|t| t.ndcg),
        queries: included.len(),
        skipped: per_query.len() - included.len(),
        relevant_ties: included.iter().filter(|q| q.relevant_tie).count(),
    }
}

/// Reads the score file `scores_path`, checks it against `samples` pair by pair and evaluates it.
pub fn evaluate_score_file(
    samples: &[Sample],
    scores_path: &Path,
    opts: &MetricOptions,
) -> Result<Evaluation> {
    let per_sample = read_scores_per_sample(samples, scores_path)?;
    evaluate(samples, &per_sample, opts)
}

/// Writes one JSON line per sample (metrics, counts, tie flag and ranks), atomically.
pub fn write_per_query(path: &Path, per_query: &[QueryMetrics]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    for q in per_query {
        serde_json::to_writer(&mut file, q).map_err(|e| Error::io(path, e.into()))?;
        file.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    }
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(y: &[u8], s: &[f32], want_ap: f64, want_ndcg: f64, want_mrr: f64) {
        let relevant: Vec<bool> = y.iter().map(|&v| v == 1).collect();
        let scores: Vec<f64> = s.iter().map(|&v| f64::from(v)).collect();
        let got = sample_metrics(&relevant, &scores, 10);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(got.ap, want_ap), "AP of {y:?}/{s:?}: {got:?}");
        assert!(close(got.ndcg, want_ndcg), "NDCG of {y:?}/{s:?}: {got:?}");
        assert!(close(got.mrr, want_mrr), "MRR of {y:?}/{s:?}: {got:?}");
    }

    #[test]
    fn spec_test_vectors() {
        // Spec §A.1, checked there against scikit-learn 1.9.1 (values to 10 decimals).
        check(&[1, 0, 0], &[0.9, 0.5, 0.1], 1.0, 1.0, 1.0);
        check(&[0, 1, 0], &[0.9, 0.5, 0.1], 0.5, 0.6309297536, 0.5);
        check(&[1, 0, 0, 1], &[0.5, 0.5, 0.2, 0.1], 0.5, 0.7640681226, 0.5);
        check(
            &[1, 0, 1, 0, 0],
            &[1., 1., 1., 0.3, 0.3],
            0.6666666667,
            0.8710490643,
            1.0,
        );
        let mut y = [0u8; 12];
        y[11] = 1;
        let s: Vec<f32> = (1..=12).rev().map(|v| v as f32).collect();
        check(&y, &s, 0.0833333333, 0.0, 0.0);
        check(&[1, 1], &[0.2, 0.7], 1.0, 1.0, 1.0);
    }

    #[test]
    fn ranks_follow_the_stable_reversed_rule() {
        assert_eq!(ranks(&[0.5, 0.5, 0.9, 0.5]), vec![4, 3, 1, 2]);
    }

    #[test]
    fn sigmoid_f32_saturates_like_torch() {
        assert_eq!(sigmoid_f32(17.0), 1.0);
        assert!(sigmoid_f32(16.0) < 1.0);
        assert_eq!(sigmoid_f32(0.0), 0.5);
        assert_eq!(sigmoid_f32(-200.0), 0.0);
        // Spec §A.3: 100,001 evenly spaced logits in [12, 17] give only 53 distinct sigmoids.
        let distinct = |lo: f64, hi: f64| {
            let mut v: Vec<u32> = (0..=100_000)
                .map(|i| sigmoid_f32((lo + (hi - lo) * f64::from(i) / 100_000.0) as f32).to_bits())
                .collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        assert_eq!(distinct(12.0, 17.0), 53);
    }

    fn sample(query: &str, n_pos: usize, n_neg: usize) -> Sample {
        Sample {
            query: query.into(),
            positive: (0..n_pos).map(|i| format!("p{i}")).collect(),
            negative: (0..n_neg).map(|i| format!("n{i}")).collect(),
        }
    }

    #[test]
    fn variants_handle_empty_lists_like_their_evaluators() {
        let samples = vec![sample("a", 1, 2), sample("b", 0, 2), sample("c", 2, 0)];
        let scores = vec![vec![3.0, 1.0, 2.0], vec![1.0, 2.0], vec![1.0, 2.0]];
        let st = evaluate(&samples, &scores, &MetricOptions::default()).unwrap();
        assert_eq!(st.summary.queries, 3);
        assert_eq!(st.per_query[1].metrics.ap, 0.0);
        assert!(
            (st.summary.map - 2.0 / 3.0).abs() < 1e-15,
            "{:?}",
            st.summary
        );
        let mteb = MetricOptions {
            variant: Variant::Mteb,
            ..MetricOptions::default()
        };
        let m = evaluate(&samples, &scores, &mteb).unwrap();
        assert_eq!((m.summary.queries, m.summary.skipped), (1, 2));
        assert_eq!(m.summary.map, 1.0);

        let single = vec![sample("d", 1, 0)];
        let err = evaluate(&single, &[vec![0.3]], &MetricOptions::default()).unwrap_err();
        assert!(err.to_string().contains("single document"), "{err}");
        let m = evaluate(&single, &[vec![0.3]], &mteb).unwrap();
        assert_eq!(m.summary.queries, 0);
    }

    #[test]
    fn sigmoid_saturation_creates_counted_ties() {
        // Logits 20 and 18 differ but both saturate to 1.0 in float32: the negative (later
        // index) ranks first under the pessimistic rule.
        let samples = vec![sample("a", 1, 1)];
        let scores = vec![vec![18.0, 20.0]];
        let sig = evaluate(&samples, &scores, &MetricOptions::default()).unwrap();
        assert_eq!(sig.summary.relevant_ties, 1);
        assert_eq!(sig.per_query[0].ranks, vec![2, 1]);
        assert_eq!(sig.summary.mrr, 0.5);
        assert_eq!(sig.summary.map, 0.5);
        let logit = MetricOptions {
            score_space: ScoreSpace::Logit,
            ..MetricOptions::default()
        };
        let l = evaluate(&samples, &scores, &logit).unwrap();
        assert_eq!(l.summary.relevant_ties, 0);
        assert_eq!(l.summary.mrr, 0.5);
    }
}
