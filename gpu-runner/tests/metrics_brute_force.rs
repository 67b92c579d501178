//! Property tests: the metrics against brute-force definitions on random cases with many ties.

use gpu_runner::metrics::{has_relevant_tie, ranks, sample_metrics};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn discount(i: usize, at_k: usize) -> f64 {
    if i < at_k {
        1.0 / (i as f64 + 2.0).log2()
    } else {
        0.0
    }
}

/// scikit-learn's AP from its definition: one step per distinct threshold, highest first.
fn brute_ap(rel: &[bool], s: &[f64]) -> f64 {
    let n_rel = rel.iter().filter(|&&r| r).count() as f64;
    let mut thresholds = s.to_vec();
    thresholds.sort_by(|a, b| b.partial_cmp(a).unwrap());
    thresholds.dedup();
    let (mut ap, mut prev_recall) = (0.0, 0.0);
    for t in thresholds {
        let above: Vec<usize> = (0..s.len()).filter(|&i| s[i] >= t).collect();
        let tp = above.iter().filter(|&&i| rel[i]).count() as f64;
        let recall = tp / n_rel;
        ap += (recall - prev_recall) * tp / above.len() as f64;
        prev_recall = recall;
    }
    ap
}

/// MRR from the rank formula: 1 + #higher + #equal-with-larger-index.
fn brute_mrr(rel: &[bool], s: &[f64], at_k: usize) -> f64 {
    let rank = |i: usize| {
        1 + (0..s.len())
            .filter(|&j| s[j] > s[i] || (s[j] == s[i] && j > i))
            .count()
    };
    (0..s.len())
        .filter(|&i| rel[i])
        .map(rank)
        .min()
        .filter(|&r| r <= at_k)
        .map_or(0.0, |r| 1.0 / r as f64)
}

fn idcg(rel: &[bool], at_k: usize) -> f64 {
    let n_rel = rel.iter().filter(|&&r| r).count();
    (0..n_rel).map(|i| discount(i, at_k)).sum()
}

/// Tie-averaged NDCG as the mean DCG over every ordering consistent with the scores.
fn brute_ndcg_permutations(rel: &[bool], s: &[f64], at_k: usize) -> f64 {
    let mut perm: Vec<usize> = (0..s.len()).collect();
    let (mut total, mut count) = (0.0, 0usize);
    permute(&mut perm, 0, &mut |p| {
        if p.windows(2).all(|w| s[w[0]] >= s[w[1]]) {
            total += (0..p.len())
                .filter(|&i| rel[p[i]])
                .map(|i| discount(i, at_k))
                .sum::<f64>();
            count += 1;
        }
    });
    total / count as f64 / idcg(rel, at_k)
}

fn permute(p: &mut Vec<usize>, k: usize, visit: &mut impl FnMut(&[usize])) {
    if k == p.len() {
        visit(p);
        return;
    }
    for i in k..p.len() {
        p.swap(k, i);
        permute(p, k + 1, visit);
        p.swap(k, i);
    }
}

/// Tie-averaged NDCG as each document's mean discount over the positions its tie group spans.
fn brute_ndcg_expected(rel: &[bool], s: &[f64], at_k: usize) -> f64 {
    let dcg: f64 = (0..s.len())
        .filter(|&i| rel[i])
        .map(|i| {
            let first = (0..s.len()).filter(|&j| s[j] > s[i]).count();
            let size = (0..s.len()).filter(|&j| s[j] == s[i]).count();
            (first..first + size)
                .map(|r| discount(r, at_k))
                .sum::<f64>()
                / size as f64
        })
        .sum();
    dcg / idcg(rel, at_k)
}

fn random_case(rng: &mut StdRng, max_n: usize) -> (Vec<bool>, Vec<f64>, usize) {
    let n = rng.random_range(2..=max_n);
    let n_levels = rng.random_range(1..=4);
    let s: Vec<f64> = (0..n)
        .map(|_| f64::from(rng.random_range(0..n_levels)) * 0.25)
        .collect();
    let mut rel: Vec<bool> = (0..n).map(|_| rng.random_bool(0.4)).collect();
    let forced = rng.random_range(0..n);
    rel[forced] = true;
    let at_k = rng.random_range(1..=n + 2);
    (rel, s, at_k)
}

fn assert_close(what: &str, got: f64, want: f64, rel: &[bool], s: &[f64], at_k: usize) {
    assert!(
        (got - want).abs() < 1e-12,
        "{what}: got {got}, want {want} for rel={rel:?} s={s:?} k={at_k}"
    );
}

#[test]
fn small_cases_match_permutation_brute_force() {
    let mut rng = StdRng::seed_from_u64(42);
    for _ in 0..1500 {
        let (rel, s, at_k) = random_case(&mut rng, 6);
        let got = sample_metrics(&rel, &s, at_k);
        assert_close("AP", got.ap, brute_ap(&rel, &s), &rel, &s, at_k);
        assert_close("MRR", got.mrr, brute_mrr(&rel, &s, at_k), &rel, &s, at_k);
        let want = brute_ndcg_permutations(&rel, &s, at_k);
        assert_close("NDCG", got.ndcg, want, &rel, &s, at_k);
    }
}

#[test]
fn larger_cases_match_brute_force() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..1500 {
        let (rel, s, at_k) = random_case(&mut rng, 40);
        let got = sample_metrics(&rel, &s, at_k);
        assert_close("AP", got.ap, brute_ap(&rel, &s), &rel, &s, at_k);
        assert_close("MRR", got.mrr, brute_mrr(&rel, &s, at_k), &rel, &s, at_k);
        let want = brute_ndcg_expected(&rel, &s, at_k);
        assert_close("NDCG", got.ndcg, want, &rel, &s, at_k);

        let r = ranks(&s);
        let best_relevant = (0..s.len()).filter(|&i| rel[i]).map(|i| r[i]).min();
        assert_eq!(
            best_relevant
                .filter(|&b| b <= at_k)
                .map_or(0.0, |b| 1.0 / b as f64),
            got.mrr
        );
        let tie = (0..s.len()).any(|i| (0..s.len()).any(|j| rel[i] && !rel[j] && s[i] == s[j]));
        assert_eq!(has_relevant_tie(&rel, &s), tie);
    }
}
