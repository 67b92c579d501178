//! A resumable scoring job: flattened pairs in, the reference score file out.
//!
//! Scores are appended in pair order to `<output>.partial` one window at a time, and the file is
//! synced after every window. A restarted job checks the partial file's lines against the input,
//! drops a torn last line and continues after the last complete pair; at the end the partial
//! file is rewritten into the output by [`crate::scores::ScoreWriter`]. Scores found in the [`ScoreCache`] are not recomputed.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::cache::ScoreCache;
use super::{plan_batches, Batching, Teacher};
use crate::data::Sample;
use crate::scores::ScoreWriter;
use crate::{Error, Result};

/// One line of the reference score format, keys in the reference order.
#[derive(Debug, Serialize, Deserialize)]
struct ScoreLine<'a> {
    query: std::borrow::Cow<'a, str>,
    passage: std::borrow::Cow<'a, str>,
    score: f64,
}

/// How a job batches and where it caches.
#[derive(Debug, Clone)]
pub struct JobOptions {
    pub batching: Batching,
    /// Pairs per written (and synced) window.
    pub window: usize,
    /// The score cache file, if any.
    pub cache: Option<PathBuf>,
}

/// What a finished job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobReport {
    pub total: usize,
    /// Pairs already in the partial file of an interrupted run.
    pub resumed: usize,
    pub from_cache: usize,
    pub computed: usize,
}

/// Parses a `--shard i/n` value (0-based `i < n`).
pub fn parse_shard(s: &str) -> std::result::Result<(usize, usize), String> {
    let bad = || format!("--shard {s:?}: expected i/n with 0 <= i < n, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (
        i.trim().parse::<usize>().map_err(|_| bad())?,
        n.trim().parse::<usize>().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// The contiguous range of `total` flattened pairs that shard `i` of `n` scores, so that the
/// shard outputs concatenated in order give the unsharded file.
pub fn shard_range(total: usize, i: usize, n: usize) -> Range<usize> {
    (i * total / n)..((i + 1) * total / n)
}

/// The flattened (query, passage) pairs of `samples` that shard `i` of `n` scores (all of them
/// without a shard), in order: what `gpu-runner score --shard i/n` and a shard job score.
pub fn shard_pairs(samples: &[Sample], shard: Option<(usize, usize)>) -> Vec<(String, String)> {
    let total: usize = samples.iter().map(Sample::n_pairs).sum();
    let range = match shard {
        Some((i, n)) => shard_range(total, i, n),
        None => 0..total,
    };
    samples
        .iter()
        .flat_map(|s| s.pairs())
        .skip(range.start)
        .take(range.len())
        .map(|(q, p)| (q.to_string(), p.to_string()))
        .collect()
}

/// The partial file beside `output`.
pub fn partial_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    output.with_file_name(name)
}

/// Scores `pairs` into `output`, resuming an interrupted run of the same job.
pub fn run(
    teacher: &Teacher,
    pairs: &[(String, String)],
    output: &Path,
    options: &JobOptions,
    progress: &ProgressBar,
) -> Result<JobReport> {
    let partial = partial_path(output);
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let resumed = resume_point(&partial, pairs)?;
    let mut cache = options.cache.as_deref().map(ScoreCache::open).transpose()?;
    let setting = teacher.setting();
    let mut file = OpenOptions::new()
        .append(true)
        .open(&partial)
        .map_err(|e| Error::io(&partial, e))?;
    progress.set_length(pairs.len() as u64);
    progress.set_position(resumed as u64);
    let mut report = JobReport {
        total: pairs.len(),
        resumed,
        from_cache: 0,
        computed: 0,
    };
    let mut start = resumed;
    while start < pairs.len() {
        let end = (start + options.window.max(1)).min(pairs.len());
        let window = &pairs[start..end];
        let keys: Vec<String> = window.iter().map(|(q, p)| setting.key(q, p)).collect();
        let mut scores: Vec<Option<f64>> = keys
            .iter()
            .map(|k| cache.as_ref().and_then(|c| c.get(k)))
            .collect();
        let hits = scores.iter().filter(|s| s.is_some()).count();
        report.from_cache += hits;
        progress.inc(hits as u64);
        let misses: Vec<usize> = (0..window.len()).filter(|&i| scores[i].is_none()).collect();
        score_misses(
            teacher,
            window,
            &misses,
            options.batching,
            &mut scores,
            progress,
        )?;
        report.computed += misses.len();
        let mut text = String::new();
        for (((q, p), key), score) in window.iter().zip(keys).zip(&scores) {
            let score =
                score.ok_or_else(|| Error::Other("internal: a pair was not scored".into()))?;
            if let Some(c) = cache.as_mut() {
                c.insert(key, score)?;
            }
            let line = ScoreLine {
                query: q.into(),
                passage: p.into(),
                score,
            };
            text.push_str(&serde_json::to_string(&line).map_err(|e| Error::Other(e.to_string()))?);
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(&partial, e))?;
        file.sync_data().map_err(|e| Error::io(&partial, e))?;
        if let Some(c) = cache.as_mut() {
            c.flush()?;
        }
        progress.set_message(format!("{} from cache", report.from_cache));
        start = end;
    }
    file.sync_all().map_err(|e| Error::io(&partial, e))?;
    drop(file);
    finalize(&partial, output)?;
    Ok(report)
}

/// Rewrites the partial file into `output` in the reference score format (atomically), then
/// removes the partial file.
fn finalize(partial: &Path, output: &Path) -> Result<()> {
    let mut writer = ScoreWriter::create(output)?;
    crate::scores::for_each_score(partial, |_, rec| writer.write(&rec))?;
    writer.commit()?;
    std::fs::remove_file(partial).map_err(|e| Error::io(partial, e))
}

/// Scores `window[i]` for every `i` in `misses`, in length-bucketed batches.
fn score_misses(
    teacher: &Teacher,
    window: &[(String, String)],
    misses: &[usize],
    batching: Batching,
    scores: &mut [Option<f64>],
    progress: &ProgressBar,
) -> Result<()> {
    let rests = misses
        .iter()
        .map(|&i| teacher.encode_pair(&window[i].0, &window[i].1))
        .collect::<Result<Vec<_>>>()?;
    let lengths: Vec<usize> = rests.iter().map(Vec::len).collect();
    for batch in plan_batches(&lengths, batching) {
        let seqs: Vec<&[u32]> = batch.iter().map(|&j| rests[j].as_slice()).collect();
        let batch_scores = teacher.score_encoded(&seqs)?;
        for (&j, s) in batch.iter().zip(batch_scores) {
            let (q, p) = &window[misses[j]];
            if !s.is_finite() {
                return Err(Error::Other(format!(
                    "teacher produced {s} for query {q:?} / passage {p:?}; try --dtype f32"
                )));
            }
            scores[misses[j]] = Some(f64::from(s));
        }
        progress.inc(batch.len() as u64);
    }
    Ok(())
}

/// Validates an existing partial file against `pairs`, truncates a torn last line and returns
/// how many pairs it already holds; creates an empty partial file if there is none.
fn resume_point(partial: &Path, pairs: &[(String, String)]) -> Result<usize> {
    let file = match std::fs::File::open(partial) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::File::create(partial).map_err(|e| Error::io(partial, e))?;
            return Ok(0);
        }
        Err(e) => return Err(Error::io(partial, e)),
    };
    let mut reader = BufReader::new(file);
    let (mut n_done, mut valid_bytes) = (0usize, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(partial, e))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break; // end of file, or a torn last line from a crash
        }
        let line_no = n_done + 1;
        let line: ScoreLine = serde_json::from_slice(&buf)
            .map_err(|e| Error::input(partial, line_no, "score", e.to_string()))?;
        match pairs.get(n_done) {
            Some((q, p)) if *q == line.query && *p == line.passage => {}
            _ => {
                return Err(Error::input(
                    partial,
                    line_no,
                    "query",
                    "does not match the input's pair at this position: the partial file is from \
                     another job; delete it to start over",
                ))
            }
        }
        n_done += 1;
        valid_bytes += n as u64;
    }
    let f = OpenOptions::new()
        .write(true)
        .open(partial)
        .map_err(|e| Error::io(partial, e))?;
    f.set_len(valid_bytes).map_err(|e| Error::io(partial, e))?;
    Ok(n_done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_everything_in_order() {
        for total in [0, 1, 7, 100] {
            for n in 1..5 {
                let ranges: Vec<_> = (0..n).map(|i| shard_range(total, i, n)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[n - 1].end, total);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
            }
        }
        assert_eq!(parse_shard("1/4"), Ok((1, 4)));
        assert!(parse_shard("4/4").is_err());
        assert!(parse_shard("x").is_err());
    }

    #[test]
    fn resume_point_keeps_complete_matching_lines() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("s.jsonl.partial");
        let pairs: Vec<(String, String)> =
            (0..3).map(|i| ("q".to_string(), format!("p{i}"))).collect();
        std::fs::write(
            &partial,
            "{\"query\":\"q\",\"passage\":\"p0\",\"score\":1.0}\n{\"query\":\"q\",\"passage\":\"p1\",\"sc",
        )
        .unwrap();
        assert_eq!(resume_point(&partial, &pairs).unwrap(), 1);
        let kept = std::fs::read_to_string(&partial).unwrap();
        assert_eq!(kept.lines().count(), 1);
        assert!(kept.ends_with('\n'));

        std::fs::write(
            &partial,
            "{\"query\":\"q\",\"passage\":\"other\",\"score\":1.0}\n",
        )
        .unwrap();
        let err = resume_point(&partial, &pairs).unwrap_err().to_string();
        assert!(err.contains(":1: query"), "{err}");
    }

    #[test]
    fn partial_path_appends_suffix() {
        assert_eq!(
            partial_path(Path::new("out/s.jsonl")),
            Path::new("out/s.jsonl.partial")
        );
    }
}
