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

use std::sync::RwLock;

use super::cache::{CacheAt, ScoreCache, ScoreSetting};
use super::{Batching, Teacher};
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

/// Padded rest tokens per teacher batch in production: about 240 StackOverflow-shaped pairs,
/// the batch size at which query-level reuse measured fastest on the H100 (960 was slower).
pub const BATCH_TOKENS: usize = 8_192;

/// How a job batches and where it caches.
#[derive(Debug, Clone)]
pub struct JobOptions {
    pub batching: Batching,
    /// Pairs per written (and synced) window.
    pub window: usize,
    /// The score cache, if any.
    pub cache: Option<CacheAt>,
}

impl JobOptions {
    /// What the pipeline's scoring stage uses: length-bucketed batches of at most
    /// [`BATCH_TOKENS`] padded rest tokens (`DISTILLERY_TEACHER_BATCH_TOKENS` overrides it, for
    /// benchmarks), windows of about 4,096 pairs (cut at query boundaries; a crash loses at
    /// most one), no cache.
    pub fn production() -> JobOptions {
        let tokens = std::env::var("DISTILLERY_TEACHER_BATCH_TOKENS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(BATCH_TOKENS);
        JobOptions {
            batching: Batching::Tokens(tokens),
            window: 4096,
            cache: None,
        }
    }
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

/// Pairs per window at most: what a crash can lose, and the grid that shards are cut on.
pub const MAX_WINDOW: usize = 4096;

/// The window of a data set of `total` pairs with at most `max` pairs per window: an eighth of
/// the pairs, so that small data sets still make several windows (and shards).
pub fn grid_window(total: usize, max: usize) -> usize {
    total.div_ceil(8).clamp(1, max.max(1))
}

/// The flattened pairs' queries of `samples`, in pair order.
fn pair_queries(samples: &[Sample]) -> Vec<&str> {
    samples
        .iter()
        .flat_map(|s| s.pairs().map(|(q, _)| q))
        .collect()
}

/// The contiguous pair ranges of the `n` shards of `samples`' flattened pairs: shard `i` holds
/// the windows of the data set's grid ([`grid_window`], [`window_ranges`]) that start in the
/// `i`-th `n`-th of the pairs, so every shard is whole windows, scored in the same batches as
/// an unsharded run, and the shards concatenated in order are the unsharded file. A shard can
/// be empty when there are fewer windows than shards.
pub fn shard_ranges(samples: &[Sample], n: usize, max_window: usize) -> Vec<Range<usize>> {
    let queries = pair_queries(samples);
    let total = queries.len();
    let starts: Vec<usize> = window_ranges(&queries, 0, grid_window(total, max_window))
        .into_iter()
        .map(|w| w.start)
        .collect();
    let boundary = |at: usize| starts.iter().copied().find(|&s| s >= at).unwrap_or(total);
    let n = n.max(1);
    (0..n)
        .map(|i| boundary(i * total / n)..boundary((i + 1) * total / n))
        .collect()
}

/// What one scoring job scores: its pairs (shard `i` of `n`, or all of them) and the window of
/// the whole data set's grid.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    pub pairs: Vec<(String, String)>,
    pub window: usize,
}

/// The [`ShardPlan`] of `shard` (everything without one) with windows of at most `max_window`
/// pairs: what `gpu-runner score --shard i/n` and a shard job score.
pub fn shard_plan(
    samples: &[Sample],
    shard: Option<(usize, usize)>,
    max_window: usize,
) -> ShardPlan {
    let total: usize = samples.iter().map(Sample::n_pairs).sum();
    let range = match shard {
        Some((i, n)) => shard_ranges(samples, n, max_window)
            .get(i)
            .cloned()
            .unwrap_or(total..total),
        None => 0..total,
    };
    let pairs = samples
        .iter()
        .flat_map(|s| s.pairs())
        .skip(range.start)
        .take(range.len())
        .map(|(q, p)| (q.to_string(), p.to_string()))
        .collect();
    ShardPlan {
        pairs,
        window: grid_window(total, max_window),
    }
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
///
/// Windows end at query boundaries, so a query's documents share one segment; a producer
/// thread looks the next window up in the cache and tokenizes its misses while the current
/// one is scored.
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
    let queries: Vec<&str> = pairs.iter().map(|(q, _)| q.as_str()).collect();
    let starts: Vec<usize> = window_ranges(&queries, 0, options.window)
        .into_iter()
        .map(|w| w.start)
        .collect();
    let resumed = resume_point(&partial, pairs, &starts)?;
    let cache = RwLock::new(
        options
            .cache
            .as_ref()
            .map(ScoreCache::open_at)
            .transpose()?,
    );
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
    let ranges = window_ranges(&queries, resumed, options.window);
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared>>(1);
        let (cache_ref, setting_ref) = (&cache, &setting);
        scope.spawn(move || {
            for range in ranges {
                let prepared = prepare(teacher, pairs, range, setting_ref, cache_ref);
                let failed = prepared.is_err();
                if tx.send(prepared).is_err() || failed {
                    return;
                }
            }
        });
        for prepared in rx {
            let w = prepared?;
            let window = &pairs[w.range.clone()];
            let hits = window.len() - w.misses.len();
            report.from_cache += hits;
            progress.inc(hits as u64);
            let scores = score_window(teacher, window, w, options.batching)?;
            report.computed += window.len() - hits;
            progress.inc((window.len() - hits) as u64);
            append_window(&mut file, &partial, window, &scores)?;
            let mut guard = cache
                .write()
                .map_err(|_| Error::Other("score cache lock poisoned".into()))?;
            if let Some(c) = guard.as_mut() {
                for (key, score) in scores.keys.into_iter().zip(scores.values) {
                    c.insert(key, score)?;
                }
                c.flush()?;
            }
            progress.set_message(format!("{} from cache", report.from_cache));
        }
        Ok(())
    })?;
    file.sync_all().map_err(|e| Error::io(&partial, e))?;
    drop(file);
    finalize(&partial, output)?;
    Ok(report)
}

/// Consecutive ranges of the pairs (given by their `queries`) from `from` on, each about
/// `window` pairs long and ending where a query ends (a query with more pairs than `window` is
/// one window). From a window's start, the next windows are the same whatever came before.
pub fn window_ranges(queries: &[&str], from: usize, window: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = from;
    while start < queries.len() {
        let mut end = (start + window.max(1)).min(queries.len());
        while end < queries.len() && queries[end] == queries[end - 1] {
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// A window made ready for the teacher: cache keys, cached scores and the misses' prompt ids.
struct Prepared {
    range: Range<usize>,
    keys: Vec<String>,
    cached: Vec<Option<f64>>,
    /// Window positions of the pairs the cache does not hold.
    misses: Vec<usize>,
    /// Their prompt ids after the shared prefix.
    rests: Vec<Vec<u32>>,
}

fn prepare(
    teacher: &Teacher,
    pairs: &[(String, String)],
    range: Range<usize>,
    setting: &ScoreSetting,
    cache: &RwLock<Option<ScoreCache>>,
) -> Result<Prepared> {
    let window = &pairs[range.clone()];
    let keys: Vec<String> = window.iter().map(|(q, p)| setting.key(q, p)).collect();
    let cached: Vec<Option<f64>> = {
        let guard = cache
            .read()
            .map_err(|_| Error::Other("score cache lock poisoned".into()))?;
        keys.iter()
            .map(|k| guard.as_ref().and_then(|c| c.get_loaded(k)))
            .collect()
    };
    let misses: Vec<usize> = (0..window.len()).filter(|&i| cached[i].is_none()).collect();
    let rests = misses
        .iter()
        .map(|&i| teacher.encode_pair(&window[i].0, &window[i].1))
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        range,
        keys,
        cached,
        misses,
        rests,
    })
}

/// A window's scores in pair order, and the (key, score) entries new to the cache.
struct WindowScores {
    all: Vec<f64>,
    keys: Vec<String>,
    values: Vec<f64>,
}

/// Scores the misses of `w` with query-level reuse and merges them with its cached scores.
fn score_window(
    teacher: &Teacher,
    window: &[(String, String)],
    w: Prepared,
    batching: Batching,
) -> Result<WindowScores> {
    let miss_pairs: Vec<(&str, &str)> = w
        .misses
        .iter()
        .map(|&i| (window[i].0.as_str(), window[i].1.as_str()))
        .collect();
    let computed = if miss_pairs.is_empty() {
        Vec::new()
    } else {
        teacher.score_encoded_pairs(&miss_pairs, &w.rests, batching)?
    };
    let mut all = w.cached;
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    for (&i, s) in w.misses.iter().zip(computed) {
        let (q, p) = &window[i];
        if !s.is_finite() {
            return Err(Error::Other(format!(
                "teacher produced {s} for query {q:?} / passage {p:?}; try --dtype f32"
            )));
        }
        all[i] = Some(f64::from(s));
        keys.push(w.keys[i].clone());
        values.push(f64::from(s));
    }
    let all = all
        .into_iter()
        .map(|s| s.ok_or_else(|| Error::Other("internal: a pair was not scored".into())))
        .collect::<Result<Vec<_>>>()?;
    Ok(WindowScores { all, keys, values })
}

/// Appends a window's score lines to the partial file and syncs it.
fn append_window(
    file: &mut std::fs::File,
    partial: &Path,
    window: &[(String, String)],
    scores: &WindowScores,
) -> Result<()> {
    let mut text = String::new();
    for ((q, p), &score) in window.iter().zip(&scores.all) {
        let line = ScoreLine {
            query: q.into(),
            passage: p.into(),
            score,
        };
        text.push_str(&serde_json::to_string(&line).map_err(|e| Error::Other(e.to_string()))?);
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io(partial, e))?;
    file.sync_data().map_err(|e| Error::io(partial, e))
}

/// Rewrites the partial file into `output` in the reference score format (atomically), then
/// removes the partial file.
fn finalize(partial: &Path, output: &Path) -> Result<()> {
    let mut writer = ScoreWriter::create(output)?;
    crate::scores::for_each_score(partial, |_, rec| writer.write(&rec))?;
    writer.commit()?;
    std::fs::remove_file(partial).map_err(|e| Error::io(partial, e))
}

/// Validates an existing partial file against `pairs` and returns how many pairs of it are
/// kept: every complete matching line up to the start of the window (of `window_starts`)
/// that holds the first missing pair, so that window is scored again whole, in the same batches
/// as an uninterrupted run. Truncates the file there (a torn last line included); creates an
/// empty partial file if there is none.
fn resume_point(
    partial: &Path,
    pairs: &[(String, String)],
    window_starts: &[usize],
) -> Result<usize> {
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
    // The last window start reached, and the file's length there.
    let mut kept = (0usize, 0u64);
    let mut next_start = 0;
    let mut buf = Vec::new();
    loop {
        while window_starts.get(next_start).is_some_and(|&s| s <= n_done) {
            if window_starts[next_start] == n_done {
                kept = (n_done, valid_bytes);
            }
            next_start += 1;
        }
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
    if n_done == pairs.len() {
        kept = (n_done, valid_bytes);
    }
    let f = OpenOptions::new()
        .write(true)
        .open(partial)
        .map_err(|e| Error::io(partial, e))?;
    f.set_len(kept.1).map_err(|e| Error::io(partial, e))?;
    if kept.0 < n_done {
        tracing::info!(
            "resume: {} complete pairs found; the window from pair {} is scored again",
            n_done,
            kept.0
        );
    }
    Ok(kept.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(counts: &[usize]) -> Vec<Sample> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &n)| Sample {
                query: format!("q{i}"),
                positive: (0..n).map(|j| format!("p{j}")).collect(),
                negative: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn shards_are_whole_windows_covering_everything_in_order() {
        for counts in [vec![], vec![1], vec![3, 1, 4, 1, 5, 9, 2, 6], vec![30; 40]] {
            let s = samples(&counts);
            let total: usize = counts.iter().sum();
            let queries = pair_queries(&s);
            for max in [1, 5, 4096] {
                let starts: Vec<usize> = window_ranges(&queries, 0, grid_window(total, max))
                    .iter()
                    .map(|w| w.start)
                    .chain([total])
                    .collect();
                for n in 1..5 {
                    let ranges = shard_ranges(&s, n, max);
                    assert_eq!(ranges.len(), n);
                    assert_eq!(ranges[0].start, 0);
                    assert_eq!(ranges[n - 1].end, total);
                    for w in ranges.windows(2) {
                        assert_eq!(w[0].end, w[1].start);
                    }
                    assert!(ranges.iter().all(|r| starts.contains(&r.start)));
                }
            }
        }
        // 40 queries of 30 pairs: windows of 150 pairs (5 queries), 4 shards of 2 windows.
        let s = samples(&[30; 40]);
        assert_eq!(grid_window(1200, 4096), 150);
        assert_eq!(
            shard_ranges(&s, 4, 4096),
            vec![0..300, 300..600, 600..900, 900..1200]
        );
        let plan = shard_plan(&s, Some((1, 4)), 4096);
        assert_eq!((plan.pairs.len(), plan.window), (300, 150));
        assert_eq!(plan.pairs[0].0, "q10");
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
        assert_eq!(resume_point(&partial, &pairs, &[0, 1, 2]).unwrap(), 1);
        let kept = std::fs::read_to_string(&partial).unwrap();
        assert_eq!(kept.lines().count(), 1);
        assert!(kept.ends_with('\n'));

        std::fs::write(
            &partial,
            "{\"query\":\"q\",\"passage\":\"other\",\"score\":1.0}\n",
        )
        .unwrap();
        let err = resume_point(&partial, &pairs, &[0, 1, 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains(":1: query"), "{err}");

        // Two of three pairs of one window: the window is scored again from its start.
        std::fs::write(
            &partial,
            "{\"query\":\"q\",\"passage\":\"p0\",\"score\":1.0}\n{\"query\":\"q\",\"passage\":\"p1\",\"score\":2.0}\n",
        )
        .unwrap();
        assert_eq!(resume_point(&partial, &pairs, &[0]).unwrap(), 0);
        assert_eq!(std::fs::read_to_string(&partial).unwrap(), "");
    }

    #[test]
    fn windows_end_where_a_query_ends() {
        let queries: Vec<&str> = [("a", 3), ("b", 1), ("c", 4), ("d", 1)]
            .iter()
            .flat_map(|&(q, n)| std::iter::repeat_n(q, n))
            .collect();
        assert_eq!(window_ranges(&queries, 0, 2), vec![0..3, 3..8, 8..9]);
        assert_eq!(window_ranges(&queries, 3, 5), vec![3..8, 8..9]);
        assert!(window_ranges(&queries, 9, 5).is_empty());
    }

    #[test]
    fn partial_path_appends_suffix() {
        assert_eq!(
            partial_path(Path::new("out/s.jsonl")),
            Path::new("out/s.jsonl.partial")
        );
    }
}
