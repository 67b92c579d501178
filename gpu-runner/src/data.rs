//! MTEB reranking data: one `{"query": str, "positive": [str], "negative": [str]}` object per
//! line, as `.jsonl` or `.jsonl.gz` (spec §1.1, §F).
//!
//! [`read_samples`] streams a file into [`Sample`]s and rejects malformed lines with an
//! [`Error::Input`] naming the file, the 1-based line and the field. Unlike the reference's
//! `generate_logits.py`, which treats a missing list as `[]`, every key is required here: the
//! evaluator (spec §A.1) raises on a missing `query` or `positive`, and a silently empty list
//! would change the pair order that teacher-score files rely on. Extra keys are ignored.
//!
//! [`Sample::pairs`] gives the flattened pair order that every stage shares: per line, the
//! positives in order, then the negatives. [`DataStats`] counts what spec §F recommends
//! checking at load time.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::jsonl::for_each_line;
use crate::{Error, Result};

/// One reranking sample: a query with its relevant and irrelevant passages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The query text.
    pub query: String,
    /// Relevant passages, in file order.
    pub positive: Vec<String>,
    /// Irrelevant passages, in file order.
    pub negative: Vec<String>,
}

impl Sample {
    /// The `(query, passage)` pairs of this sample in flattened order: positives, then negatives.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.positive
            .iter()
            .chain(&self.negative)
            .map(move |p| (self.query.as_str(), p.as_str()))
    }

    /// The number of pairs, `positive.len() + negative.len()`.
    pub fn n_pairs(&self) -> usize {
        self.positive.len() + self.negative.len()
    }
}

/// Reads every sample of a `.jsonl` or `.jsonl.gz` file, in file order. Blank lines are skipped.
pub fn read_samples(path: &Path) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for_each_line(path, |line_no, bytes| {
        samples.push(parse_sample(path, line_no, bytes)?);
        Ok(())
    })?;
    Ok(samples)
}

/// Parses one line of an MTEB reranking file.
pub fn parse_sample(path: &Path, line_no: usize, bytes: &[u8]) -> Result<Sample> {
    let bad = |field: &str, msg: String| Error::input(path, line_no, field, msg);
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| bad("json", format!("bad JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(bad(
            "json",
            format!("expected an object, got {}", kind(&value)),
        ));
    };
    let query = match obj.remove("query") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(bad(
                "query",
                format!("expected a string, got {}", kind(&other)),
            ))
        }
        None => return Err(bad("query", "missing key".into())),
    };
    let positive = string_list(obj.remove("positive"), "positive", &bad)?;
    let negative = string_list(obj.remove("negative"), "negative", &bad)?;
    Ok(Sample {
        query,
        positive,
        negative,
    })
}

fn string_list(
    value: Option<Value>,
    field: &str,
    bad: &impl Fn(&str, String) -> Error,
) -> Result<Vec<String>> {
    let items = match value {
        Some(Value::Array(items)) => items,
        Some(other) => return Err(bad(field, format!("expected a list, got {}", kind(&other)))),
        None => return Err(bad(field, "missing key".into())),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(idx, item)| match item {
            Value::String(s) => Ok(s),
            other => Err(bad(
                &format!("{field}[{idx}]"),
                format!("expected a string, got {}", kind(&other)),
            )),
        })
        .collect()
}

/// The JSON type name of `v`, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Load-time statistics of a data file (spec §F, "recommended checks").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DataStats {
    /// Samples (lines).
    pub queries: usize,
    /// (query, passage) pairs, i.e. teacher scorings.
    pub pairs: usize,
    /// Positive passages in total.
    pub positives: usize,
    /// Negative passages in total.
    pub negatives: usize,
    /// Samples with an empty `positive` list (ST scores them 0; MTEB 1.x skips them).
    pub empty_positive: usize,
    /// Samples with an empty `negative` list (MTEB 1.x skips them).
    pub empty_negative: usize,
    /// Samples where some string is both a positive and a negative.
    pub samples_with_overlap: usize,
    /// Distinct strings that are both positive and negative, summed over samples.
    pub overlapping_strings: usize,
    /// Samples whose query string already occurred on an earlier line.
    pub duplicate_queries: usize,
    /// The largest number of passages of one sample.
    pub max_passages: usize,
}

impl DataStats {
    /// Computes the statistics of `samples`.
    pub fn of(samples: &[Sample]) -> DataStats {
        let mut stats = DataStats {
            queries: samples.len(),
            ..DataStats::default()
        };
        let mut seen_queries: HashSet<&str> = HashSet::with_capacity(samples.len());
        for s in samples {
            stats.pairs += s.n_pairs();
            stats.positives += s.positive.len();
            stats.negatives += s.negative.len();
            stats.max_passages = stats.max_passages.max(s.n_pairs());
            stats.empty_positive += usize::from(s.positive.is_empty());
            stats.empty_negative += usize::from(s.negative.is_empty());
            if !seen_queries.insert(&s.query) {
                stats.duplicate_queries += 1;
            }
            let positives: HashSet<&str> = s.positive.iter().map(String::as_str).collect();
            let overlap: HashSet<&str> = s
                .negative
                .iter()
                .map(String::as_str)
                .filter(|n| positives.contains(n))
                .collect();
            stats.overlapping_strings += overlap.len();
            stats.samples_with_overlap += usize::from(!overlap.is_empty());
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap()
    }

    const GOOD: &str = concat!(
        "{\"query\": \"q1\", \"positive\": [\"a\", \"b\"], \"negative\": [\"c\"], \"extra\": 1}\n",
        "{\"query\": \"q2\", \"positive\": [], \"negative\": [\"x\", \"x\"]}\n",
        "\n",
        "{\"query\": \"q1\", \"positive\": [\"s\"], \"negative\": [\"s\", \"t\"]}\n",
    );

    #[test]
    fn reads_plain_and_gzip_identically() {
        let dir = tempfile::tempdir().unwrap();
        let plain = read_samples(&write(&dir, "d.jsonl", GOOD)).unwrap();
        let gz_path = dir.path().join("d.jsonl.gz");
        std::fs::write(&gz_path, gzip(GOOD)).unwrap();
        assert_eq!(read_samples(&gz_path).unwrap(), plain);
        assert_eq!(plain.len(), 3);
        let pairs: Vec<_> = plain[0].pairs().collect();
        assert_eq!(pairs, vec![("q1", "a"), ("q1", "b"), ("q1", "c")]);
    }

    #[test]
    fn statistics() {
        let dir = tempfile::tempdir().unwrap();
        let samples = read_samples(&write(&dir, "d.jsonl", GOOD)).unwrap();
        let stats = DataStats::of(&samples);
        let want = DataStats {
            queries: 3,
            pairs: 8,
            positives: 3,
            negatives: 5,
            empty_positive: 1,
            empty_negative: 0,
            samples_with_overlap: 1,
            overlapping_strings: 1,
            duplicate_queries: 1,
            max_passages: 3,
        };
        assert_eq!(stats, want);
    }

    /// Reads `text` (gzipped when `name` ends in `.gz`) and returns the error message.
    fn error_of(name: &str, bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = read_samples(&path).unwrap_err();
        assert!(matches!(err, Error::Input { .. }), "{err:?}");
        err.to_string()
    }

    fn check(text: &str, want_prefix: &str) {
        let line1 = "{\"query\": \"ok\", \"positive\": [\"a\"], \"negative\": []}\n";
        let msg = error_of("d.jsonl", format!("{line1}{text}\n").as_bytes());
        assert!(msg.contains(want_prefix), "{msg:?} lacks {want_prefix:?}");
    }

    #[test]
    fn bad_json() {
        check("{\"query\": \"q\", ", "d.jsonl:2: json: bad JSON");
        check("[1, 2]", "d.jsonl:2: json: expected an object, got a list");
    }

    #[test]
    fn missing_key() {
        check(
            "{\"positive\": [], \"negative\": []}",
            "d.jsonl:2: query: missing key",
        );
        check(
            "{\"query\": \"q\", \"negative\": []}",
            "d.jsonl:2: positive: missing key",
        );
        check(
            "{\"query\": \"q\", \"positive\": []}",
            "d.jsonl:2: negative: missing key",
        );
    }

    #[test]
    fn non_string_item() {
        check(
            "{\"query\": \"q\", \"positive\": [\"a\"], \"negative\": [\"b\", 3]}",
            "d.jsonl:2: negative[1]: expected a string, got a number",
        );
        check(
            "{\"query\": 7, \"positive\": [], \"negative\": []}",
            "d.jsonl:2: query: expected a string",
        );
    }

    #[test]
    fn non_list_value() {
        check(
            "{\"query\": \"q\", \"positive\": \"a\", \"negative\": []}",
            "d.jsonl:2: positive: expected a list, got a string",
        );
    }

    #[test]
    fn truncated_gzip() {
        let many: String = (0..2000)
            .map(|i| {
                format!("{{\"query\": \"q{i}\", \"positive\": [\"p{i}\"], \"negative\": []}}\n")
            })
            .collect();
        let gz = gzip(&many);
        let msg = error_of("d.jsonl.gz", &gz[..gz.len() / 2]);
        assert!(msg.contains("d.jsonl.gz:"), "{msg}");
        assert!(
            msg.contains(": gzip: corrupt or truncated gzip stream"),
            "{msg}"
        );
        // Not gzip at all.
        let msg = error_of("d.jsonl.gz", b"plain text\n");
        assert!(msg.contains("d.jsonl.gz:1: gzip:"), "{msg}");
    }

    #[test]
    fn invalid_utf8_is_an_input_error() {
        let msg = error_of(
            "d.jsonl",
            b"{\"query\": \"\xff\", \"positive\": [], \"negative\": []}\n",
        );
        assert!(msg.contains("d.jsonl:1: json: bad JSON"), "{msg}");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = read_samples(Path::new("/nonexistent/d.jsonl")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
    }
}
