//! Paired before/after comparison of two evaluations on the same samples.
//!
//! For each metric: the means before and after, the absolute and relative change (the
//! reference's `(after − before)/before·100`), a paired bootstrap 95 % confidence interval of the
//! mean change (queries resampled with replacement, percentile method with numpy's linear
//! interpolation) and a two-sided paired randomization test (random sign flips of the
//! per-query changes; `p = (1 + #{|mean*| ≥ |mean|}) / (1 + resamples)`). Both are seeded.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::metrics::{Evaluation, Triple};
use crate::{Error, Result};

/// Options of [`compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompareOptions {
    /// Bootstrap resamples and randomization permutations.
    pub resamples: usize,
    /// Seed of both.
    pub seed: u64,
    /// The k of MRR@k and NDCG@k, for metric names.
    pub at_k: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            resamples: 10_000,
            seed: 0,
            at_k: 10,
        }
    }
}

/// The comparison of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricChange {
    /// `map`, `mrr@k` or `ndcg@k`.
    pub metric: String,
    /// Mean before.
    pub before: f64,
    /// Mean after.
    pub after: f64,
    /// `after − before`.
    pub absolute: f64,
    /// `(after − before)/before·100`, absent when `before` is 0.
    pub relative_pct: Option<f64>,
    /// Lower end of the bootstrap 95 % CI of the change.
    pub ci_low: f64,
    /// Upper end of the bootstrap 95 % CI of the change.
    pub ci_high: f64,
    /// Two-sided paired randomization-test p-value.
    pub p_value: f64,
}

/// The comparison of all metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Queries in the paired sample.
    pub queries: usize,
    /// Resamples used.
    pub resamples: usize,
    /// Seed used.
    pub seed: u64,
    /// Queries with a relevant/irrelevant tie, before and after.
    pub relevant_ties: [usize; 2],
    /// One entry per metric: MAP, MRR@k, NDCG@k.
    pub metrics: Vec<MetricChange>,
}

/// Compares `before` and `after`, which must come from the same samples and variant.
pub fn compare(
    before: &Evaluation,
    after: &Evaluation,
    opts: &CompareOptions,
) -> Result<Comparison> {
    let pairs = paired(before, after)?;
    let names = [
        "map".to_string(),
        format!("mrr@{}", opts.at_k),
        format!("ndcg@{}", opts.at_k),
    ];
    let pick = [|t: &Triple| t.ap, |t: &Triple| t.mrr, |t: &Triple| t.ndcg];
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let metrics = names
        .into_iter()
        .zip(pick)
        .map(|(metric, f)| {
            let b: Vec<f64> = pairs.iter().map(|(x, _)| f(x)).collect();
            let a: Vec<f64> = pairs.iter().map(|(_, y)| f(y)).collect();
            change(metric, &b, &a, opts.resamples, &mut rng)
        })
        .collect();
    Ok(Comparison {
        queries: pairs.len(),
        resamples: opts.resamples,
        seed: opts.seed,
        relevant_ties: [before.summary.relevant_ties, after.summary.relevant_ties],
        metrics,
    })
}

/// The (before, after) metrics of every included query, checked to be the same queries.
fn paired<'a>(
    before: &'a Evaluation,
    after: &'a Evaluation,
) -> Result<Vec<(&'a Triple, &'a Triple)>> {
    if before.per_query.len() != after.per_query.len() {
        return Err(Error::Other(format!(
            "cannot pair {} queries before with {} after",
            before.per_query.len(),
            after.per_query.len()
        )));
    }
    let mut pairs = Vec::with_capacity(before.per_query.len());
    for (b, a) in before.per_query.iter().zip(&after.per_query) {
        if b.query != a.query || b.included != a.included {
            return Err(Error::Other(format!(
                "sample {}: the two evaluations differ ({:?} vs {:?})",
                b.sample_idx + 1,
                b.query,
                a.query
            )));
        }
        if b.included {
            pairs.push((&b.metrics, &a.metrics));
        }
    }
    if pairs.is_empty() {
        return Err(Error::Other("no query to compare".into()));
    }
    Ok(pairs)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn change(
    metric: String,
    before: &[f64],
    after: &[f64],
    resamples: usize,
    rng: &mut StdRng,
) -> MetricChange {
    let diffs: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let (before, after) = (mean(before), mean(after));
    let (ci_low, ci_high) = bootstrap_ci(&diffs, resamples, rng);
    MetricChange {
        metric,
        before,
        after,
        absolute: after - before,
        relative_pct: (before != 0.0).then(|| (after - before) / before * 100.0),
        ci_low,
        ci_high,
        p_value: sign_flip_p_value(&diffs, resamples, rng),
    }
}

/// Percentile bootstrap 95 % CI of the mean of `diffs`.
pub fn bootstrap_ci(diffs: &[f64], resamples: usize, rng: &mut StdRng) -> (f64, f64) {
    if resamples == 0 || diffs.is_empty() {
        let m = if diffs.is_empty() { 0.0 } else { mean(diffs) };
        return (m, m);
    }
    let n = diffs.len();
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| diffs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    (percentile(&means, 2.5), percentile(&means, 97.5))
}

/// numpy's default (`linear`) percentile of sorted, non-empty `xs`.
pub fn percentile(xs: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (xs.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    xs[lo] + (xs[hi] - xs[lo]) * (pos - lo as f64)
}

/// Two-sided paired randomization test of mean(`diffs`) = 0 by random sign flips.
pub fn sign_flip_p_value(diffs: &[f64], resamples: usize, rng: &mut StdRng) -> f64 {
    let observed = mean(diffs).abs();
    // Sums are compared with a relative tolerance so that exact ties in exact arithmetic are not
    // lost to rounding.
    let tolerance = 1e-12
        * diffs
            .iter()
            .map(|d| d.abs())
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
    let n = diffs.len() as f64;
    let mut extreme = 0usize;
    let mut bits = 0u64;
    for _ in 0..resamples {
        let mut sum = 0.0;
        for (i, d) in diffs.iter().enumerate() {
            if i % 64 == 0 {
                bits = rng.random();
            }
            sum += if bits >> (i % 64) & 1 == 1 { *d } else { -*d };
        }
        if (sum / n).abs() >= observed - tolerance / n {
            extreme += 1;
        }
    }
    (1 + extreme) as f64 / (1 + resamples) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::data::Sample;
    use crate::metrics::{evaluate, MetricOptions};

    fn evaluation(scores: &[Vec<f64>]) -> Evaluation {
        let samples: Vec<Sample> = (0..scores.len())
            .map(|i| Sample {
                query: format!("q{i}"),
                positive: vec!["p".into()],
                negative: vec!["n1".into(), "n2".into()],
            })
            .collect();
        evaluate(&samples, scores, &MetricOptions::default()).unwrap()
    }

    #[test]
    fn compares_paired_queries() {
        // Before: the positive is last on every query; after: first on half of them.
        let before: Vec<Vec<f64>> = (0..40).map(|_| vec![-1.0, 0.0, 1.0]).collect();
        let after: Vec<Vec<f64>> = (0..40)
            .map(|i| {
                if i % 2 == 0 {
                    vec![2.0, 0.0, 1.0]
                } else {
                    vec![-1.0, 0.0, 1.0]
                }
            })
            .collect();
        let c = compare(
            &evaluation(&before),
            &evaluation(&after),
            &CompareOptions::default(),
        )
        .unwrap();
        assert_eq!(c.queries, 40);
        let map = &c.metrics[0];
        assert_eq!(map.metric, "map");
        assert!((map.before - 1.0 / 3.0).abs() < 1e-12);
        assert!((map.after - 2.0 / 3.0).abs() < 1e-12);
        assert!((map.relative_pct.unwrap() - 100.0).abs() < 1e-9);
        assert!(map.ci_low > 0.15 && map.ci_high < 0.52, "{map:?}");
        assert!(map.p_value < 0.001, "{map:?}");
        assert_eq!(c.metrics[1].metric, "mrr@10");
        assert_eq!(c.metrics[2].metric, "ndcg@10");

        let err = compare(
            &evaluation(&before),
            &evaluation(&before[..3]),
            &CompareOptions::default(),
        );
        assert!(err.is_err());
    }

    #[test]
    fn percentile_matches_numpy_linear() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&xs, 50.0), 2.5);
        assert_eq!(percentile(&xs, 2.5), 1.075);
        assert_eq!(percentile(&xs, 100.0), 4.0);
    }

    #[test]
    fn bootstrap_ci_brackets_the_mean_and_is_seeded() {
        let diffs: Vec<f64> = (0..200).map(|i| f64::from(i % 7) * 0.1 - 0.2).collect();
        let m = mean(&diffs);
        let ci = bootstrap_ci(&diffs, 2000, &mut StdRng::seed_from_u64(1));
        assert!(ci.0 < m && m < ci.1, "{ci:?} around {m}");
        assert_eq!(
            ci,
            bootstrap_ci(&diffs, 2000, &mut StdRng::seed_from_u64(1))
        );
        // A constant change has a degenerate interval.
        let ci = bootstrap_ci(&[0.5; 30], 100, &mut StdRng::seed_from_u64(1));
        assert_eq!(ci, (0.5, 0.5));
    }

    #[test]
    fn sign_flip_p_values() {
        let mut rng = StdRng::seed_from_u64(3);
        // No change: every flip is as extreme.
        assert_eq!(sign_flip_p_value(&[0.0; 50], 999, &mut rng), 1.0);
        // A consistent improvement on 100 queries: only the identity (probability 2^-100) is
        // as extreme, so p is the minimum 1/(1+R).
        assert_eq!(sign_flip_p_value(&[0.1; 100], 999, &mut rng), 1.0 / 1000.0);
        // Exact test for 3 queries: 2 of the 8 sign patterns reach |mean| >= 1, so p ≈ 0.25.
        let p = sign_flip_p_value(&[1.0, 1.0, 1.0], 20_000, &mut rng);
        assert!((p - 0.25).abs() < 0.015, "{p}");
    }
}
