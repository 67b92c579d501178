//! The per-query detail of a run, for the dashboard's diff explorer: for each test query, its
//! positives and the student's top 10 before and after training, with passage text, student and
//! teacher scores, relevance marks and the query's metrics under the three models.
//!
//! Built in the compare stage from files it already has (the test data, the teacher's test
//! scores, the student's scores before and after) and written as `query_detail.jsonl`, one
//! [`QueryDetail`] per line in data order; the worker uploads it in batches.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use distillery_api::queries::{MAX_PASSAGE_CHARS, MAX_QUERY_BATCH};
use distillery_api::{PassageDetail, QueryDetail, QueryScores};

use crate::data::Sample;
use crate::io::AtomicFile;
use crate::jsonl::for_each_line;
use crate::metrics::{evaluate, MetricOptions, QueryMetrics};
use crate::{Error, Result};

/// The file name of the detail in the compare stage's directory.
pub const FILE_NAME: &str = "query_detail.jsonl";
/// Length of each top list.
pub const TOP_N: usize = 10;
/// Positives kept per query (the count of all is in `n_positive`).
pub const MAX_POSITIVES: usize = 20;

/// One score list per sample (flattened pair order) for each model.
pub struct ModelScores<'a> {
    pub teacher: &'a [Vec<f64>],
    pub before: &'a [Vec<f64>],
    pub after: &'a [Vec<f64>],
}

/// The detail of every sample, in data order.
pub fn build(
    samples: &[Sample],
    scores: &ModelScores,
    opts: &MetricOptions,
) -> Result<Vec<QueryDetail>> {
    let teacher = evaluate(samples, scores.teacher, opts)?;
    let before = evaluate(samples, scores.before, opts)?;
    let after = evaluate(samples, scores.after, opts)?;
    Ok(samples
        .iter()
        .enumerate()
        .map(|(i, sample)| {
            let raw = [&scores.teacher[i], &scores.before[i], &scores.after[i]];
            let evals = [
                &teacher.per_query[i],
                &before.per_query[i],
                &after.per_query[i],
            ];
            detail(sample, raw, evals)
        })
        .collect())
}

fn query_scores(q: &QueryMetrics) -> QueryScores {
    QueryScores {
        ap: q.metrics.ap,
        rr: q.metrics.mrr,
        ndcg: q.metrics.ndcg,
    }
}

/// Documents (by index) ranked 1..=TOP_N, best first.
fn top(ranks: &[usize]) -> Vec<usize> {
    let mut docs: Vec<usize> = (0..ranks.len()).filter(|&d| ranks[d] <= TOP_N).collect();
    docs.sort_by_key(|&d| ranks[d]);
    docs
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_PASSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// `raw` and `evals` are the teacher's, the student's before and after, in that order.
fn detail(sample: &Sample, raw: [&Vec<f64>; 3], evals: [&QueryMetrics; 3]) -> QueryDetail {
    let [teacher, before, after] = evals;
    let (top_before, top_after) = (top(&before.ranks), top(&after.ranks));
    let n_positive = sample.positive.len();
    // The positives first, then the rest of both top lists, each document once.
    let mut docs: Vec<usize> = (0..n_positive.min(MAX_POSITIVES)).collect();
    let listed: BTreeSet<usize> = top_before.iter().chain(&top_after).copied().collect();
    let others: Vec<usize> = listed.into_iter().filter(|d| !docs.contains(d)).collect();
    docs.extend(others);
    let texts: Vec<&String> = sample.positive.iter().chain(&sample.negative).collect();
    let passages = docs
        .iter()
        .map(|&d| PassageDetail {
            text: cut(texts[d]),
            relevant: d < n_positive,
            teacher: raw[0][d],
            before: raw[1][d],
            after: raw[2][d],
            rank_before: before.ranks[d] as u32,
            rank_after: after.ranks[d] as u32,
        })
        .collect();
    let index = |list: &[usize]| -> Vec<u32> {
        list.iter()
            .filter_map(|d| docs.iter().position(|x| x == d))
            .map(|i| i as u32)
            .collect()
    };
    QueryDetail {
        query_id: before.sample_idx.to_string(),
        query: sample.query.clone(),
        n_positive: n_positive as u32,
        n_negative: sample.negative.len() as u32,
        before: query_scores(before),
        after: query_scores(after),
        teacher: query_scores(teacher),
        top_before: index(&top_before),
        top_after: index(&top_after),
        passages,
    }
}

/// Writes one detail per line, atomically.
pub fn write(path: &Path, details: &[QueryDetail]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    for d in details {
        serde_json::to_writer(&mut file, d).map_err(|e| Error::io(path, e.into()))?;
        file.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    }
    file.commit()
}

/// Reads a file written by [`write`]; a bad line is an error naming it.
pub fn read(path: &Path) -> Result<Vec<QueryDetail>> {
    let mut details = Vec::new();
    for_each_line(path, |line_no, bytes| {
        let d = serde_json::from_slice(bytes)
            .map_err(|e| Error::input(path, line_no, "query detail", e.to_string()))?;
        details.push(d);
        Ok(())
    })?;
    Ok(details)
}

/// Splits `details` into upload batches of at most [`MAX_QUERY_BATCH`] queries and, unless a
/// single query is larger, about `max_bytes` of JSON each.
pub fn batches(details: &[QueryDetail], max_bytes: usize) -> Vec<&[QueryDetail]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, d) in details.iter().enumerate() {
        let size = serde_json::to_vec(d).map_or(0, |v| v.len());
        if i > start && (bytes + size > max_bytes || i - start == MAX_QUERY_BATCH) {
            out.push(&details[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < details.len() {
        out.push(&details[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(query: &str, n_pos: usize, n_neg: usize) -> Sample {
        Sample {
            query: query.into(),
            positive: (0..n_pos).map(|i| format!("pos {i}")).collect(),
            negative: (0..n_neg).map(|i| format!("neg {i}")).collect(),
        }
    }

    #[test]
    fn detail_lists_positives_and_both_top_tens() {
        // 2 positives, 14 negatives. Before: the positives rank last; after: first.
        let s = sample("q", 2, 14);
        let n = 16;
        let teacher: Vec<f64> = (0..n)
            .map(|d| if d < 2 { 5.0 } else { -(d as f64) })
            .collect();
        let before: Vec<f64> = (0..n).map(|d| d as f64).collect();
        let after: Vec<f64> = (0..n).map(|d| -(d as f64)).collect();
        let scores = ModelScores {
            teacher: &[teacher],
            before: &[before],
            after: &[after],
        };
        let details = build(&[s], &scores, &MetricOptions::default()).unwrap();
        let d = &details[0];
        assert_eq!(
            (d.query_id.as_str(), d.n_positive, d.n_negative),
            ("0", 2, 14)
        );
        assert_eq!(d.top_before.len(), TOP_N);
        assert_eq!(d.top_after.len(), TOP_N);
        // Before, the best is the last negative (score 15), ranked 1.
        let first_before = &d.passages[d.top_before[0] as usize];
        assert_eq!(
            (first_before.text.as_str(), first_before.rank_before),
            ("neg 13", 1)
        );
        assert!(!first_before.relevant);
        // After, the positives lead, scored and marked.
        let first_after = &d.passages[d.top_after[0] as usize];
        assert_eq!(
            (first_after.text.as_str(), first_after.relevant),
            ("pos 0", true)
        );
        assert_eq!((first_after.teacher, first_after.after), (5.0, 0.0));
        assert_eq!(first_after.rank_before, 16);
        // Positives first, each passage once: here the two top lists cover all 16 documents.
        assert_eq!(d.passages.len(), 16);
        assert!(d.passages[0].relevant && d.passages[1].relevant);
        let texts: BTreeSet<&str> = d.passages.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts.len(), d.passages.len(), "no passage twice");
        // Metrics: perfect after, worst before.
        assert_eq!(d.after.ndcg, 1.0);
        assert_eq!(d.after.rr, 1.0);
        assert!(d.before.ndcg < 0.5, "{:?}", d.before);
        assert_eq!(d.teacher.ap, 1.0);
        // Ranks are consistent with the top lists.
        for (pos, &i) in d.top_after.iter().enumerate() {
            assert_eq!(d.passages[i as usize].rank_after as usize, pos + 1);
        }
    }

    #[test]
    fn long_passages_are_cut_and_round_trip_through_the_file() {
        let mut s = sample("long", 1, 1);
        s.negative[0] = "é".repeat(MAX_PASSAGE_CHARS + 5);
        let scores = ModelScores {
            teacher: &[vec![1.0, 0.0]],
            before: &[vec![0.0, 1.0]],
            after: &[vec![1.0, 0.0]],
        };
        let details = build(&[s], &scores, &MetricOptions::default()).unwrap();
        let neg = details[0].passages.iter().find(|p| !p.relevant).unwrap();
        assert_eq!(neg.text.chars().count(), MAX_PASSAGE_CHARS + 1);
        assert!(neg.text.ends_with('…'));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        write(&path, &details).unwrap();
        assert_eq!(read(&path).unwrap(), details);
        std::fs::write(&path, "{\"query_id\": 3}\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains(":1: query detail"), "{err}");
    }

    #[test]
    fn batches_respect_the_size_and_count_limits() {
        let s = sample("q", 1, 1);
        let scores = ModelScores {
            teacher: &[vec![1.0, 0.0]],
            before: &[vec![0.0, 1.0]],
            after: &[vec![1.0, 0.0]],
        };
        let one = build(&[s], &scores, &MetricOptions::default()).unwrap();
        let size = serde_json::to_vec(&one[0]).unwrap().len();
        let many = vec![one[0].clone(); 1200];
        let by_count = batches(&many, usize::MAX);
        let lens: Vec<usize> = by_count.iter().map(|b| b.len()).collect();
        assert_eq!(lens, [MAX_QUERY_BATCH, MAX_QUERY_BATCH, 200]);
        let by_size = batches(&many[..10], 3 * size);
        let lens: Vec<usize> = by_size.iter().map(|b| b.len()).collect();
        assert_eq!(lens, [3, 3, 3, 1]);
        assert_eq!(
            batches(&many[..2], 1).len(),
            2,
            "an oversize query goes alone"
        );
        assert!(batches(&[], 100).is_empty());
    }

    #[test]
    fn mismatched_scores_are_an_error() {
        let scores = ModelScores {
            teacher: &[vec![1.0]],
            before: &[vec![0.0, 1.0]],
            after: &[vec![1.0, 0.0]],
        };
        assert!(build(&[sample("q", 1, 1)], &scores, &MetricOptions::default()).is_err());
    }
}
