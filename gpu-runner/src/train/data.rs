//! Training triplets `{query, positive, negative, score}` (the output of the `triplets` stage),
//! read from `.jsonl` or `.jsonl.gz` with errors naming the file, 1-based line and field.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use crate::{Error, Result};

/// One MarginMSE example: the teacher's margin `score` between `positive` and `negative`.
#[derive(Debug, Clone, PartialEq)]
pub struct Triplet {
    /// The query.
    pub query: String,
    /// The passage the teacher scored higher.
    pub positive: String,
    /// The passage the teacher scored lower.
    pub negative: String,
    /// Teacher margin, cast to float32 as the reference does (`cast_column("score", float32)`).
    pub score: f32,
}

impl Triplet {
    /// A cheap length proxy for sorting: the query's bytes plus its longer passage's.
    pub fn text_len(&self) -> usize {
        self.query.len() + self.positive.len().max(self.negative.len())
    }
}

fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::new(reader)))
}

fn text_field(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    path: &Path,
    line: usize,
) -> Result<String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Error::input(path, line, key, "not a string")),
        None => Err(Error::input(path, line, key, "missing key")),
    }
}

/// Parses one JSON line into a [`Triplet`].
pub fn parse_triplet(text: &str, path: &Path, line: usize) -> Result<Triplet> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::input(path, line, "<json>", e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(Error::input(path, line, "<json>", "not a JSON object"));
    };
    let score = match obj.get("score") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(_) => return Err(Error::input(path, line, "score", "not a number")),
        None => return Err(Error::input(path, line, "score", "missing key")),
    };
    if !score.is_finite() || !(score as f32).is_finite() {
        return Err(Error::input(
            path,
            line,
            "score",
            format!("not a finite float32: {score}"),
        ));
    }
    Ok(Triplet {
        query: text_field(&obj, "query", path, line)?,
        positive: text_field(&obj, "positive", path, line)?,
        negative: text_field(&obj, "negative", path, line)?,
        score: score as f32,
    })
}

/// Reads every triplet of `path` (blank lines are skipped).
pub fn read_triplets(path: &Path) -> Result<Vec<Triplet>> {
    let mut out = Vec::new();
    for (i, line) in open(path)?.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| Error::input(path, line_no, "<file>", e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_triplet(&line, path, line_no)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(content: &str, want: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, content).unwrap();
        let err = read_triplets(&path).unwrap_err().to_string();
        assert!(
            err.contains("t.jsonl") && err.contains(want),
            "{err} should contain {want}"
        );
    }

    #[test]
    fn reads_plain_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let line = r#"{"query":"q","positive":"p","negative":"n","score":1.5}"#;
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, format!("{line}\n\n{line}\n")).unwrap();
        let got = read_triplets(&path).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].score, 1.5);
        let gz = dir.path().join("t.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), Default::default());
        std::io::Write::write_all(&mut enc, line.as_bytes()).unwrap();
        enc.finish().unwrap();
        assert_eq!(read_triplets(&gz).unwrap()[0].query, "q");
    }

    #[test]
    fn bad_input_names_line_and_field() {
        let ok = r#"{"query":"q","positive":"p","negative":"n","score":1}"#;
        check_err(&format!("{ok}\n{{not json\n"), ":2: <json>");
        check_err(
            r#"{"query":"q","positive":"p","score":1}"#,
            ":1: negative: missing key",
        );
        check_err(
            r#"{"query":"q","positive":["p"],"negative":"n","score":1}"#,
            ":1: positive: not a string",
        );
        check_err(
            r#"{"query":"q","positive":"p","negative":"n","score":"1"}"#,
            ":1: score: not a number",
        );
        check_err(
            r#"{"query":"q","positive":"p","negative":"n","score":1e300}"#,
            ":1: score: not a finite",
        );
        check_err("[1,2]", ":1: <json>: not a JSON object");
    }
}
