//! Teacher-score files in the reference format (spec §1.1): one
//! `{"query": str, "passage": str, "score": float}` line per pair, in the flattened pair order of
//! the data file ([`crate::data::Sample::pairs`]). Extra fields on a line are allowed and ignored.
//!
//! [`read_scores`] rejects NaN and infinite scores (which Python's `json.dumps` writes as the
//! non-JSON tokens `NaN` and `Infinity`) with the line number. [`ScoreWriter`] writes the file
//! atomically and byte-compatible with Python's `json.dumps(..., ensure_ascii=False)`.

use std::io::Write;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::data::{kind, Sample};
use crate::io::AtomicFile;
use crate::jsonl::{for_each_line, write_f64, write_str};
use crate::{Error, Result};

/// One scored (query, passage) pair.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScoreRecord {
    /// The query text.
    pub query: String,
    /// The passage text.
    pub passage: String,
    /// The teacher's (or student's) score, finite.
    pub score: f64,
}

/// Reads every record of a score file (`.jsonl` or `.jsonl.gz`), in file order.
pub fn read_scores(path: &Path) -> Result<Vec<ScoreRecord>> {
    let mut records = Vec::new();
    for_each_score(path, |_, rec| {
        records.push(rec);
        Ok(())
    })?;
    Ok(records)
}

/// Streams the records of a score file to `on_record(line_no, record)`, in file order.
pub fn for_each_score(
    path: &Path,
    mut on_record: impl FnMut(usize, ScoreRecord) -> Result<()>,
) -> Result<()> {
    for_each_line(path, |line_no, bytes| {
        on_record(line_no, parse_score(path, line_no, bytes)?)
    })
}

/// Parses one line of a score file.
pub fn parse_score(path: &Path, line_no: usize, bytes: &[u8]) -> Result<ScoreRecord> {
    // Fast path: a well-formed line deserializes straight into the record.
    let rec = match serde_json::from_slice::<ScoreRecord>(bytes) {
        Ok(rec) => rec,
        Err(_) => return Err(diagnose(path, line_no, bytes)),
    };
    if !rec.score.is_finite() {
        return Err(Error::input(path, line_no, "score", "not a finite number"));
    }
    Ok(rec)
}

/// Explains why `bytes` is not a valid score line.
fn diagnose(path: &Path, line_no: usize, bytes: &[u8]) -> Error {
    let bad = |field: &str, msg: String| Error::input(path, line_no, field, msg);
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) if has_non_finite_score(bytes) => {
            return bad(
                "score",
                format!("not a finite number (NaN or Infinity): {e}"),
            );
        }
        Err(e) => return bad("json", format!("bad JSON: {e}")),
    };
    let Value::Object(obj) = value else {
        return bad("json", format!("expected an object, got {}", kind(&value)));
    };
    for field in ["query", "passage"] {
        match obj.get(field) {
            Some(Value::String(_)) => {}
            Some(other) => {
                return bad(field, format!("expected a string, got {}", kind(other)));
            }
            None => return bad(field, "missing key".into()),
        }
    }
    match obj.get("score") {
        Some(Value::Number(_)) => bad("score", "number out of range".into()),
        Some(other) => bad("score", format!("expected a number, got {}", kind(other))),
        None => bad("score", "missing key".into()),
    }
}

/// Whether the `score` value of a line is Python's `NaN`, `Infinity` or `-Infinity`.
fn has_non_finite_score(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("\"score\"").any(|(idx, key)| {
        let rest = text[idx + key.len()..].trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            return false;
        };
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('-').unwrap_or(rest);
        rest.starts_with("NaN") || rest.starts_with("Infinity")
    })
}

/// Writes a score file atomically: records go to a temp file that [`ScoreWriter::commit`]
/// renames over the target. Dropping the writer without committing leaves the target untouched.
pub struct ScoreWriter {
    file: AtomicFile,
    n_records: usize,
}

impl ScoreWriter {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> Result<Self> {
        Ok(ScoreWriter {
            file: AtomicFile::create(path)?,
            n_records: 0,
        })
    }

    /// Appends one line `{"query": …, "passage": …, "score": …}`. A non-finite score is refused.
    pub fn write(&mut self, rec: &ScoreRecord) -> Result<()> {
        let path = self.file.path().to_path_buf();
        if !rec.score.is_finite() {
            return Err(Error::Other(format!(
                "{}: refusing to write non-finite score {} for record {}",
                path.display(),
                rec.score,
                self.n_records + 1
            )));
        }
        write_score_line(&mut self.file, rec).map_err(|e| Error::io(&path, e))?;
        self.n_records += 1;
        Ok(())
    }

    /// The number of records written so far.
    pub fn n_records(&self) -> usize {
        self.n_records
    }

    /// Flushes and renames the file into place.
    pub fn commit(self) -> Result<()> {
        self.file.commit()
    }
}

fn write_score_line(out: &mut impl Write, rec: &ScoreRecord) -> std::io::Result<()> {
    out.write_all(b"{\"query\": ")?;
    write_str(out, &rec.query)?;
    out.write_all(b", \"passage\": ")?;
    write_str(out, &rec.passage)?;
    out.write_all(b", \"score\": ")?;
    write_f64(out, rec.score)?;
    out.write_all(b"}\n")
}

/// Splits `records` into one score list per sample, matching them by flattened pair order and
/// checking every record's query and passage against the data. The first mismatch is an error
/// naming its 1-based record number in `scores_path` (blank lines aside, the line number).
pub fn scores_per_sample(
    samples: &[Sample],
    records: &[ScoreRecord],
    scores_path: &Path,
) -> Result<Vec<Vec<f64>>> {
    let n_pairs: usize = samples.iter().map(Sample::n_pairs).sum();
    let mut next = records.iter().enumerate();
    let mut per_sample = Vec::with_capacity(samples.len());
    for sample in samples {
        let mut scores = Vec::with_capacity(sample.n_pairs());
        for (query, passage) in sample.pairs() {
            let Some((idx, rec)) = next.next() else {
                return Err(Error::input(
                    scores_path,
                    records.len() + 1,
                    "score",
                    format!("{} records but the data has {n_pairs} pairs", records.len()),
                ));
            };
            if rec.query != query {
                return Err(mismatch(scores_path, idx, "query", query, &rec.query));
            }
            if rec.passage != passage {
                return Err(mismatch(scores_path, idx, "passage", passage, &rec.passage));
            }
            scores.push(rec.score);
        }
        per_sample.push(scores);
    }
    if records.len() > n_pairs {
        return Err(Error::input(
            scores_path,
            n_pairs + 1,
            "score",
            format!(
                "{} records but the data has only {n_pairs} pairs",
                records.len()
            ),
        ));
    }
    Ok(per_sample)
}

fn mismatch(path: &Path, idx: usize, field: &str, want: &str, got: &str) -> Error {
    Error::input(
        path,
        idx + 1,
        field,
        format!(
            "does not match the data's pair in flattened order: expected {want:?}, got {got:?}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(query: &str, passage: &str, score: f64) -> ScoreRecord {
        ScoreRecord {
            query: query.into(),
            passage: passage.into(),
            score,
        }
    }

    #[test]
    fn writes_python_json_dumps_lines_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let records = vec![rec("q é", "p \"1\"", 2.5), rec("q é", "p2", -1e-05)];
        let mut w = ScoreWriter::create(&path).unwrap();
        for r in &records {
            w.write(r).unwrap();
        }
        assert!(!path.exists(), "nothing visible before commit");
        w.commit().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"query\": \"q é\", \"passage\": \"p \\\"1\\\"\", \"score\": 2.5}\n\
             {\"query\": \"q é\", \"passage\": \"p2\", \"score\": -1e-05}\n"
        );
        assert_eq!(read_scores(&path).unwrap(), records);
    }

    #[test]
    fn writer_refuses_non_finite() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ScoreWriter::create(&dir.path().join("s.jsonl")).unwrap();
        assert!(w.write(&rec("q", "p", f64::NAN)).is_err());
        assert!(w.write(&rec("q", "p", f64::INFINITY)).is_err());
    }

    fn error_of(line2: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let text = format!("{{\"query\": \"q\", \"passage\": \"p\", \"score\": 1}}\n{line2}\n");
        std::fs::write(&path, text).unwrap();
        let err = read_scores(&path).unwrap_err();
        assert!(matches!(err, Error::Input { line: 2, .. }), "{err:?}");
        err.to_string()
    }

    #[test]
    fn bad_lines_name_line_and_field() {
        let cases = [
            (
                "{\"query\": \"q\", \"passage\": \"p\", \"score\": NaN}",
                "s.jsonl:2: score: not a finite number",
            ),
            (
                "{\"query\": \"q\", \"passage\": \"p\", \"score\": -Infinity}",
                "s.jsonl:2: score: not a finite number",
            ),
            (
                "{\"query\": \"q\", \"passage\": \"p\", \"score\": Infinity, \"x\": 1}",
                "s.jsonl:2: score: not a finite number",
            ),
            (
                "{\"query\": \"q\", \"passage\": \"p\", \"score\": 1e999}",
                "s.jsonl:2: json: bad JSON: number out of range",
            ),
            (
                "{\"query\": \"q\", \"passage\": \"p\"",
                "s.jsonl:2: json: bad JSON",
            ),
            (
                "{\"query\": \"q\", \"score\": 1}",
                "s.jsonl:2: passage: missing key",
            ),
            (
                "{\"query\": 1, \"passage\": \"p\", \"score\": 1}",
                "s.jsonl:2: query: expected a string, got a number",
            ),
            (
                "{\"query\": \"q\", \"passage\": \"p\", \"score\": \"1\"}",
                "s.jsonl:2: score: expected a number, got a string",
            ),
            ("\"just a string\"", "s.jsonl:2: json: expected an object"),
        ];
        for (line, want) in cases {
            let msg = error_of(line);
            assert!(msg.contains(want), "{line}: {msg:?} lacks {want:?}");
        }
    }

    #[test]
    fn scores_round_trip_bit_for_bit() {
        // Triplet margins must equal the reference's f64 subtraction, so parsing must be
        // correctly rounded (serde_json's `float_roundtrip`).
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..20_000 {
            let x = f64::from(rng.random_range(-20.0f32..20.0)) - f64::from(rng.random::<f32>());
            let line = format!(
                "{{\"query\": \"q\", \"passage\": \"p\", \"score\": {}}}",
                crate::jsonl::py_float_repr(x)
            );
            let rec = parse_score(Path::new("s.jsonl"), 1, line.as_bytes()).unwrap();
            assert_eq!(rec.score.to_bits(), x.to_bits(), "{line}");
        }
    }

    #[test]
    fn extra_fields_and_integer_scores_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let text = "{\"query\": \"q\", \"passage\": \"p\", \"score\": 3, \"label\": [1]}\n";
        std::fs::write(&path, text).unwrap();
        assert_eq!(read_scores(&path).unwrap(), vec![rec("q", "p", 3.0)]);
    }

    #[test]
    fn scores_align_with_samples_by_flattened_order() {
        let samples = vec![
            Sample {
                query: "q1".into(),
                positive: vec!["a".into()],
                negative: vec!["b".into()],
            },
            Sample {
                query: "q2".into(),
                positive: vec![],
                negative: vec!["c".into()],
            },
        ];
        let path = Path::new("s.jsonl");
        let good = vec![
            rec("q1", "a", 1.0),
            rec("q1", "b", 2.0),
            rec("q2", "c", 3.0),
        ];
        let per_sample = scores_per_sample(&samples, &good, path).unwrap();
        assert_eq!(per_sample, vec![vec![1.0, 2.0], vec![3.0]]);

        let mut swapped = good.clone();
        swapped.swap(0, 1);
        let msg = scores_per_sample(&samples, &swapped, path)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("s.jsonl:1: passage: does not match"),
            "{msg}"
        );

        let msg = scores_per_sample(&samples, &good[..2], path)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("2 records but the data has 3 pairs"), "{msg}");

        let mut extra = good.clone();
        extra.push(rec("q3", "d", 0.0));
        let msg = scores_per_sample(&samples, &extra, path)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("s.jsonl:4: "), "{msg}");
    }
}
