//! Margin triplets from teacher scores: the reference `create_triplets.py` (spec §1.2).
//!
//! 1. [`read_groups`] groups score records by query string in insertion order; identical query
//!    strings merge even when they came from different data lines.
//! 2. [`build_triplets`] skips groups of fewer than 2 records, sorts each group stably by score
//!    descending, and pairs each of the top `top_k` records with the next `num_negatives`
//!    records ([`Sampling::Hard`], the reference). It skips identical passages and keeps only
//!    margins `pos.score − neg.score > 0` (computed in f64).
//! 3. [`write_triplets`] writes `{"query", "positive", "negative", "score"}` lines, byte-compatible
//!    with Python's `json.dumps(..., ensure_ascii=False)`, atomically.
//!
//! Bad input: the reference skips lines that fail `json.loads` or lack a key, with a warning.
//! Here a bad line is an error naming file, line and field, unless `lenient` is set; then it is
//! skipped with a warning like the reference (non-finite or non-numeric scores too, which the
//! reference would sort or crash on).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;
use serde::Serialize;

use crate::io::AtomicFile;
use crate::jsonl::{for_each_line, write_f64, write_str};
use crate::scores::parse_score;
use crate::{Error, Result};

/// One teacher-scored passage of a query group.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The passage text.
    pub passage: String,
    /// The teacher score.
    pub score: f64,
}

/// All scored passages of one query, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryGroup {
    /// The query text.
    pub query: String,
    /// Its passages with scores, in file order.
    pub records: Vec<Scored>,
}

/// Counts from reading a score file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    /// Records read.
    pub records: usize,
    /// Lines skipped as malformed (only with `lenient`).
    pub skipped_lines: usize,
    /// Distinct query strings.
    pub groups: usize,
}

/// Groups the records of a score file by query string, in insertion order.
pub fn read_groups(path: &Path, lenient: bool) -> Result<(Vec<QueryGroup>, ReadStats)> {
    let mut groups: Vec<QueryGroup> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut stats = ReadStats::default();
    for_each_line(path, |line_no, bytes| {
        let rec = match parse_score(path, line_no, bytes) {
            Ok(rec) => rec,
            Err(e @ Error::Input { .. }) if lenient => {
                tracing::warn!("skipping line: {e}");
                stats.skipped_lines += 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        stats.records += 1;
        let scored = Scored {
            passage: rec.passage,
            score: rec.score,
        };
        match index.get(rec.query.as_str()) {
            Some(&idx) => groups[idx].records.push(scored),
            None => {
                index.insert(rec.query.clone(), groups.len());
                groups.push(QueryGroup {
                    query: rec.query,
                    records: vec![scored],
                });
            }
        }
        Ok(())
    })?;
    stats.groups = groups.len();
    Ok((groups, stats))
}

/// How the negatives of each positive are chosen from the records ranked below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampling {
    /// The reference: the next `num_negatives` records below the positive.
    #[default]
    Hard,
    /// `num_negatives` records drawn uniformly (seeded) from all records below the positive.
    Random,
    /// The next `ceil(num_negatives / 2)` below the positive plus the rest drawn uniformly from
    /// the records below those.
    Mixed,
}

/// Options of [`build_triplets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TripletOptions {
    /// How many top-ranked records of each group serve as positives.
    pub top_k: usize,
    /// How many negatives each positive gets (before filtering).
    pub num_negatives: usize,
    /// How negatives are chosen.
    pub sampling: Sampling,
    /// Seed of the random draws (unused by [`Sampling::Hard`]).
    pub seed: u64,
}

impl Default for TripletOptions {
    /// The reference settings: `--top_k 8 --num_negatives 4`.
    fn default() -> Self {
        TripletOptions {
            top_k: 8,
            num_negatives: 4,
            sampling: Sampling::Hard,
            seed: 0,
        }
    }
}

/// One training triplet; `score` is the teacher margin `pos.score − neg.score > 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Triplet<'a> {
    /// The query text.
    pub query: &'a str,
    /// The higher-scored passage.
    pub positive: &'a str,
    /// The lower-scored passage.
    pub negative: &'a str,
    /// The margin.
    pub score: f64,
}

/// Counts from building triplets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BuildStats {
    /// Groups with fewer than 2 records, skipped.
    pub small_groups: usize,
    /// Groups that produced at least one triplet.
    pub groups_used: usize,
    /// Candidate (positive, negative) pairs dropped because the passages are identical.
    pub identical_passages: usize,
    /// Candidate pairs dropped because the margin is not > 0 (ties).
    pub zero_margins: usize,
    /// Triplets built.
    pub triplets: usize,
}

/// Builds the triplets of all groups, in group order (see the module docs).
pub fn build_triplets<'a>(
    groups: &'a [QueryGroup],
    opts: &TripletOptions,
) -> (Vec<Triplet<'a>>, BuildStats) {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut stats = BuildStats::default();
    let mut triplets = Vec::new();
    let mut ranked: Vec<&Scored> = Vec::new();
    let mut neg_idx: Vec<usize> = Vec::with_capacity(opts.num_negatives);
    for group in groups {
        if group.records.len() < 2 {
            stats.small_groups += 1;
            continue;
        }
        ranked.clear();
        ranked.extend(group.records.iter());
        // Stable, descending; scores are finite so `partial_cmp` is total (and -0.0 == 0.0 as
        // in Python).
        ranked.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let before = triplets.len();
        for (pos_idx, pos) in ranked.iter().take(opts.top_k).enumerate() {
            choose_negatives(ranked.len(), pos_idx, opts, &mut rng, &mut neg_idx);
            for &idx in &neg_idx {
                let neg = ranked[idx];
                if pos.passage == neg.passage {
                    stats.identical_passages += 1;
                    continue;
                }
                let margin = pos.score - neg.score;
                if margin > 0.0 {
                    triplets.push(Triplet {
                        query: &group.query,
                        positive: &pos.passage,
                        negative: &neg.passage,
                        score: margin,
                    });
                } else {
                    stats.zero_margins += 1;
                }
            }
        }
        stats.groups_used += usize::from(triplets.len() > before);
    }
    stats.triplets = triplets.len();
    (triplets, stats)
}

/// Fills `out` with the ranks (ascending) of the negatives of the positive at rank `pos_idx`.
fn choose_negatives(
    n_ranked: usize,
    pos_idx: usize,
    opts: &TripletOptions,
    rng: &mut StdRng,
    out: &mut Vec<usize>,
) {
    out.clear();
    let below = pos_idx + 1..n_ranked;
    let n = opts.num_negatives;
    let n_hard = match opts.sampling {
        Sampling::Hard => n,
        Sampling::Random => 0,
        Sampling::Mixed => n.div_ceil(2),
    };
    let hard_end = below.end.min(below.start + n_hard);
    out.extend(below.start..hard_end);
    let pool = hard_end..below.end;
    let n_random = (n - (hard_end - below.start)).min(pool.len());
    if opts.sampling != Sampling::Hard && n_random > 0 {
        let mut drawn = sample(rng, pool.len(), n_random).into_vec();
        drawn.sort_unstable();
        out.extend(drawn.into_iter().map(|i| pool.start + i));
    }
}

/// Writes `triplets` to `path` atomically, one `{"query", "positive", "negative", "score"}`
/// line each.
pub fn write_triplets(path: &Path, triplets: &[Triplet<'_>]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    for t in triplets {
        write_triplet(&mut file, t).map_err(|e| Error::io(path, e))?;
    }
    file.commit()
}

fn write_triplet(out: &mut impl Write, t: &Triplet<'_>) -> std::io::Result<()> {
    out.write_all(b"{\"query\": ")?;
    write_str(out, t.query)?;
    out.write_all(b", \"positive\": ")?;
    write_str(out, t.positive)?;
    out.write_all(b", \"negative\": ")?;
    write_str(out, t.negative)?;
    out.write_all(b", \"score\": ")?;
    write_f64(out, t.score)?;
    out.write_all(b"}\n")
}

/// Statistics of a whole triplets run, for stderr and manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TripletsReport {
    /// From reading.
    pub read: ReadStats,
    /// From building.
    pub build: BuildStats,
}

/// Reads `input`, builds the triplets and writes them to `output`: the whole stage.
pub fn run_triplets(
    input: &Path,
    output: &Path,
    opts: &TripletOptions,
    lenient: bool,
) -> Result<TripletsReport> {
    let (groups, read) = read_groups(input, lenient)?;
    let (triplets, build) = build_triplets(&groups, opts);
    write_triplets(output, &triplets)?;
    Ok(TripletsReport { read, build })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Score lines with ties, a query spread over non-adjacent lines, a single-record group,
    /// a repeated passage, `-0.0` against `0.0` and non-ASCII text.
    const SCORES: &str = r#"{"query": "qa", "passage": "a1", "score": 1.0}
{"query": "qa", "passage": "a2", "score": 3.0}
{"query": "qb", "passage": "b1", "score": 0.5}
{"query": "qa", "passage": "a3", "score": 3.0}
{"query": "qa", "passage": "a4", "score": 2.0}
{"query": "qc", "passage": "c1", "score": -0.25}
{"query": "qc", "passage": "c1", "score": -1.5}
{"query": "qc", "passage": "c2", "score": -1e-05}
{"query": "qa", "passage": "a2", "score": 0.1}
{"query": "qa", "passage": "a5", "score": 2.0}
{"query": "qa", "passage": "a6", "score": -0.0}
{"query": "qa", "passage": "a7", "score": 0.0}
{"query": "qé", "passage": "x\"y", "score": 0.3}
{"query": "qé", "passage": "z", "score": 0.1}
"#;

    /// The reference script's output on [`SCORES`] with `--top_k 2 --num_negatives 3`.
    const WANT_K2_N3: &str = r#"{"query": "qa", "positive": "a2", "negative": "a4", "score": 1.0}
{"query": "qa", "positive": "a2", "negative": "a5", "score": 1.0}
{"query": "qa", "positive": "a3", "negative": "a4", "score": 1.0}
{"query": "qa", "positive": "a3", "negative": "a5", "score": 1.0}
{"query": "qa", "positive": "a3", "negative": "a1", "score": 2.0}
{"query": "qc", "positive": "c2", "negative": "c1", "score": 0.24999}
{"query": "qc", "positive": "c2", "negative": "c1", "score": 1.49999}
{"query": "qé", "positive": "x\"y", "negative": "z", "score": 0.19999999999999998}
"#;

    /// The reference script's output on [`SCORES`] with `--top_k 8 --num_negatives 4`.
    const WANT_K8_N4: &str = r#"{"query": "qa", "positive": "a2", "negative": "a4", "score": 1.0}
{"query": "qa", "positive": "a2", "negative": "a5", "score": 1.0}
{"query": "qa", "positive": "a2", "negative": "a1", "score": 2.0}
{"query": "qa", "positive": "a3", "negative": "a4", "score": 1.0}
{"query": "qa", "positive": "a3", "negative": "a5", "score": 1.0}
{"query": "qa", "positive": "a3", "negative": "a1", "score": 2.0}
{"query": "qa", "positive": "a3", "negative": "a2", "score": 2.9}
{"query": "qa", "positive": "a4", "negative": "a1", "score": 1.0}
{"query": "qa", "positive": "a4", "negative": "a2", "score": 1.9}
{"query": "qa", "positive": "a4", "negative": "a6", "score": 2.0}
{"query": "qa", "positive": "a5", "negative": "a1", "score": 1.0}
{"query": "qa", "positive": "a5", "negative": "a2", "score": 1.9}
{"query": "qa", "positive": "a5", "negative": "a6", "score": 2.0}
{"query": "qa", "positive": "a5", "negative": "a7", "score": 2.0}
{"query": "qa", "positive": "a1", "negative": "a2", "score": 0.9}
{"query": "qa", "positive": "a1", "negative": "a6", "score": 1.0}
{"query": "qa", "positive": "a1", "negative": "a7", "score": 1.0}
{"query": "qa", "positive": "a2", "negative": "a6", "score": 0.1}
{"query": "qa", "positive": "a2", "negative": "a7", "score": 0.1}
{"query": "qc", "positive": "c2", "negative": "c1", "score": 0.24999}
{"query": "qc", "positive": "c2", "negative": "c1", "score": 1.49999}
{"query": "qé", "positive": "x\"y", "negative": "z", "score": 0.19999999999999998}
"#;

    fn run(scores: &str, opts: &TripletOptions, lenient: bool) -> Result<(String, TripletsReport)> {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("scores.jsonl");
        let output = dir.path().join("out/triplets.jsonl");
        std::fs::write(&input, scores).unwrap();
        let report = run_triplets(&input, &output, opts, lenient)?;
        Ok((std::fs::read_to_string(&output).unwrap(), report))
    }

    fn hard(top_k: usize, num_negatives: usize) -> TripletOptions {
        TripletOptions {
            top_k,
            num_negatives,
            ..TripletOptions::default()
        }
    }

    #[test]
    fn matches_reference_output_byte_for_byte() {
        let (out, report) = run(SCORES, &hard(2, 3), false).unwrap();
        assert_eq!(out, WANT_K2_N3);
        assert_eq!(report.read.records, 14);
        assert_eq!(report.read.groups, 4);
        assert_eq!(report.build.small_groups, 1);
        assert_eq!(report.build.triplets, 8);
        assert_eq!(report.build.groups_used, 3);

        let (out, report) = run(SCORES, &TripletOptions::default(), false).unwrap();
        assert_eq!(out, WANT_K8_N4);
        assert_eq!(report.build.triplets, 22);
        assert_eq!(report.build.identical_passages, 1);
        assert!(report.build.zero_margins > 0);
    }

    #[test]
    fn bad_line_is_an_error_unless_lenient() {
        let scores = format!("{SCORES}{{\"query\": \"qa\", \"score\": 1.0}}\n");
        let err = run(&scores, &hard(2, 3), false).unwrap_err().to_string();
        assert!(
            err.contains("scores.jsonl:15: passage: missing key"),
            "{err}"
        );

        let (out, report) = run(&scores, &hard(2, 3), true).unwrap();
        assert_eq!(out, WANT_K2_N3);
        assert_eq!(report.read.skipped_lines, 1);
    }

    fn many_groups() -> Vec<QueryGroup> {
        (0..20)
            .map(|q| QueryGroup {
                query: format!("q{q}"),
                records: (0..30)
                    .map(|p| Scored {
                        passage: format!("p{p}"),
                        score: f64::from((p * 7 + q) % 11),
                    })
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn random_and_mixed_sampling_are_seeded_and_draw_from_below() {
        let groups = many_groups();
        for sampling in [Sampling::Random, Sampling::Mixed] {
            let opts = TripletOptions {
                sampling,
                seed: 7,
                ..TripletOptions::default()
            };
            let (a, _) = build_triplets(&groups, &opts);
            let (b, _) = build_triplets(&groups, &opts);
            assert_eq!(a, b, "{sampling:?} is deterministic for a seed");
            let (c, _) = build_triplets(&groups, &TripletOptions { seed: 8, ..opts });
            assert_ne!(a, c, "{sampling:?} depends on the seed");
            assert!(a.iter().all(|t| t.score > 0.0 && t.positive != t.negative));
            let (hard_triplets, _) = build_triplets(&groups, &TripletOptions::default());
            assert_ne!(a, hard_triplets);
        }
    }

    #[test]
    fn choose_negatives_windows() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut out = Vec::new();
        let opts = |sampling| TripletOptions {
            sampling,
            ..TripletOptions::default()
        };
        choose_negatives(10, 2, &opts(Sampling::Hard), &mut rng, &mut out);
        assert_eq!(out, vec![3, 4, 5, 6]);
        choose_negatives(5, 2, &opts(Sampling::Hard), &mut rng, &mut out);
        assert_eq!(out, vec![3, 4]);
        choose_negatives(3, 2, &opts(Sampling::Random), &mut rng, &mut out);
        assert!(out.is_empty());
        for _ in 0..50 {
            choose_negatives(30, 3, &opts(Sampling::Mixed), &mut rng, &mut out);
            assert_eq!(out.len(), 4);
            assert_eq!(&out[..2], &[4, 5]);
            assert!(out[2] > 5 && out[3] > out[2] && out[3] < 30, "{out:?}");
            choose_negatives(30, 3, &opts(Sampling::Random), &mut rng, &mut out);
            assert_eq!(out.len(), 4);
            assert!(out.windows(2).all(|w| w[0] < w[1]) && out[0] > 3, "{out:?}");
        }
        choose_negatives(7, 3, &opts(Sampling::Mixed), &mut rng, &mut out);
        assert_eq!(out, vec![4, 5, 6]);
    }
}
