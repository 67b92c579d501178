//! A cheap lexical teacher: Okapi BM25 of each passage for its query.
//!
//! The demo uses it instead of Qwen3-Reranker so that a full run fits in seconds on a CPU. Its
//! scores go to a score file in the same format and the same flattened pair order as the
//! model teacher's ([`crate::scores`]), so every later stage is unchanged. The corpus
//! statistics (document frequencies, average length) are taken over the distinct passages of
//! the whole data file being scored, also when only a shard of its pairs is scored, so a pair's
//! score does not depend on the shard it falls in.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use crate::data::{read_samples, Sample};
use crate::scores::{ScoreRecord, ScoreWriter};
use crate::teacher::job::MAX_WINDOW;
use crate::Result;

/// BM25 parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25Params {
    /// Term-frequency saturation.
    pub k1: f64,
    /// Length normalisation.
    pub b: f64,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params { k1: 1.2, b: 0.75 }
    }
}

/// Lowercased alphanumeric terms of a text.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Corpus statistics of a set of passages.
#[derive(Debug, Clone)]
pub struct Bm25Index {
    params: Bm25Params,
    docs: usize,
    avg_len: f64,
    doc_freq: HashMap<String, usize>,
}

impl Bm25Index {
    /// Builds the statistics over the distinct passages of `samples`.
    pub fn of(samples: &[Sample], params: Bm25Params) -> Bm25Index {
        let mut seen = HashSet::new();
        let mut doc_freq: HashMap<String, usize> = HashMap::new();
        let mut total_len = 0usize;
        for passage in samples
            .iter()
            .flat_map(|s| s.positive.iter().chain(&s.negative))
        {
            if !seen.insert(passage.as_str()) {
                continue;
            }
            let ts = terms(passage);
            total_len += ts.len();
            for t in ts.into_iter().collect::<HashSet<_>>() {
                *doc_freq.entry(t).or_default() += 1;
            }
        }
        let docs = seen.len();
        Bm25Index {
            params,
            docs,
            avg_len: if docs == 0 {
                0.0
            } else {
                total_len as f64 / docs as f64
            },
            doc_freq,
        }
    }

    /// The Lucene-style (always non-negative) inverse document frequency of a term.
    pub fn idf(&self, term: &str) -> f64 {
        let n = self.doc_freq.get(term).copied().unwrap_or(0) as f64;
        (1.0 + (self.docs as f64 - n + 0.5) / (n + 0.5)).ln()
    }

    /// The BM25 score of `passage` for `query`.
    pub fn score(&self, query: &str, passage: &str) -> f64 {
        let doc = terms(passage);
        let mut tf: HashMap<&str, usize> = HashMap::new();
        for t in &doc {
            *tf.entry(t.as_str()).or_default() += 1;
        }
        let Bm25Params { k1, b } = self.params;
        let norm = if self.avg_len > 0.0 {
            1.0 - b + b * doc.len() as f64 / self.avg_len
        } else {
            1.0
        };
        // Each distinct query term once, summed in query order: a HashSet's order changes from
        // one set to the next, and with it the last bits of the sum.
        let mut seen = HashSet::new();
        let query_terms: Vec<String> = terms(query)
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect();
        query_terms
            .iter()
            .map(|t| {
                let f = tf.get(t.as_str()).copied().unwrap_or(0) as f64;
                self.idf(t) * f * (k1 + 1.0) / (f + k1 * norm)
            })
            .sum()
    }
}

/// Scores every flattened pair of `samples`, in order.
pub fn score_samples(samples: &[Sample], params: Bm25Params) -> Vec<f64> {
    let total = samples.iter().map(Sample::n_pairs).sum();
    score_range(samples, params, 0..total)
}

/// Scores the flattened pairs `range` of `samples`, in order, with the statistics of all of
/// `samples`.
pub fn score_range(samples: &[Sample], params: Bm25Params, range: Range<usize>) -> Vec<f64> {
    let index = Bm25Index::of(samples, params);
    samples
        .iter()
        .flat_map(|s| s.pairs())
        .skip(range.start)
        .take(range.len())
        .map(|(q, p)| index.score(q, p))
        .collect()
}

/// Scores the data file `input` with BM25 and writes the score file `output` atomically.
/// Returns the number of pairs written.
pub fn score_file(input: &Path, output: &Path, params: Bm25Params) -> Result<usize> {
    score_file_shard(input, output, params, None)
}

/// [`score_file`] for shard `i` of `n` ([`crate::teacher::job::shard_ranges`]) of the flattened
/// pairs when `shard` is given: the shards' files concatenated in order are the whole file.
pub fn score_file_shard(
    input: &Path,
    output: &Path,
    params: Bm25Params,
    shard: Option<(usize, usize)>,
) -> Result<usize> {
    let samples = read_samples(input)?;
    let total = samples.iter().map(Sample::n_pairs).sum();
    let range = match shard {
        Some((i, n)) => crate::teacher::job::shard_ranges(&samples, n, MAX_WINDOW)
            .get(i)
            .cloned()
            .unwrap_or(total..total),
        None => 0..total,
    };
    let scores = score_range(&samples, params, range.clone());
    let mut writer = ScoreWriter::create(output)?;
    let pairs = samples.iter().flat_map(|s| s.pairs()).skip(range.start);
    for ((query, passage), score) in pairs.zip(scores) {
        writer.write(&ScoreRecord {
            query: query.to_string(),
            passage: passage.to_string(),
            score,
        })?;
    }
    let n = writer.n_records();
    writer.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(query: &str, positive: &[&str], negative: &[&str]) -> Sample {
        Sample {
            query: query.into(),
            positive: positive.iter().map(|s| s.to_string()).collect(),
            negative: negative.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn overlapping_passages_outscore_unrelated_ones() {
        let s = vec![sample(
            "rust string error",
            &["convert a rust string", "rust error with string type"],
            &["java list method", "python date time"],
        )];
        let scores = score_samples(&s, Bm25Params::default());
        assert_eq!(scores.len(), 4);
        assert!(scores[1] > scores[0], "{scores:?}");
        assert!(scores[0] > 0.0 && scores[2] == 0.0 && scores[3] == 0.0);
    }

    #[test]
    fn a_pair_scores_the_same_in_every_shard() {
        let s = vec![
            sample("rust string", &["rust string type"], &["java list"]),
            sample("python date", &["python date time"], &["rust date", "c"]),
            sample("java list", &["java list method"], &["list of rust"]),
        ];
        let whole = score_samples(&s, Bm25Params::default());
        assert_eq!(whole.len(), 7);
        for n in 1..=4 {
            let mut joined = Vec::new();
            for range in crate::teacher::job::shard_ranges(&s, n, 1) {
                joined.extend(score_range(&s, Bm25Params::default(), range));
            }
            assert_eq!(joined, whole, "{n} shards");
        }
        // The statistics are the whole file's: a shard scored alone would differ.
        let alone = score_samples(&s[..1], Bm25Params::default());
        assert_ne!(alone[..2], whole[..2]);
    }

    #[test]
    fn scores_are_the_same_bits_every_time() {
        let s = vec![sample(
            "set can do with an answer",
            &["set set an an do use can with", "answer with a set"],
            &["an unrelated passage", "do can set"],
        )];
        let first = score_samples(&s, Bm25Params::default());
        for _ in 0..20 {
            let again = score_samples(&s, Bm25Params::default());
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&again), bits(&first));
        }
    }

    #[test]
    fn matches_hand_computed_value() {
        // 2 distinct docs, avg length 2; "a" occurs in 1 doc: idf = ln(1 + 1.5/1.5) = ln 2.
        let s = vec![sample("a", &["a b"], &["c d"])];
        let scores = score_samples(&s, Bm25Params::default());
        let expected = 2f64.ln() * 1.0 * 2.2 / (1.0 + 1.2);
        assert!((scores[0] - expected).abs() < 1e-12, "{scores:?}");
    }
}
