//! Sharded teacher scoring (`RunConfig::teacher_shards`; on a server every scoring job is a
//! shard, the only one when the run is not sharded).
//!
//! A shard job scores one contiguous range of a split's flattened pairs
//! ([`crate::teacher::job::shard_ranges`]) into its own file, `RUNDIR/shards/<stage dir name>/<i>-of-<n>.jsonl`,
//! with the same library code as `gpu-runner score --shard i/n`. A later stage that needs the
//! split's scores and has no score stage directory gets every shard from a [`ShardSource`]
//! (the server, for `gpu-runner work`), checks each against the data (one line per pair of its
//! range, in order), and concatenates them in shard order into the score file the unsharded
//! stage writes: byte for byte the same file, in the same content-addressed directory.

use std::path::{Path, PathBuf};

use candle_core::Device;
use distillery_api::{RunConfig, StageKind};

use distillery_api::StageStats;

use super::{measured, scoring_stage, stages, Work};
use crate::data::read_samples;
use crate::io::AtomicFile;
use crate::observe::{Observer, StageContext};
use crate::scores::for_each_score;
use crate::teacher::job::{shard_ranges, MAX_WINDOW};
use crate::{Error, Result};

/// Where the shards of a sharded teacher-scoring stage that ran elsewhere come from.
pub trait ShardSource: Sync {
    /// Writes shard `index` of `count` of the run's stage `kind` to `dest`, atomically.
    fn fetch(&self, kind: StageKind, index: usize, count: usize, dest: &Path) -> Result<()>;
}

/// The file of shard `index` of `count` of the scoring stage named `stage_name` in `rundir`.
pub fn shard_path(rundir: &Path, stage_name: &str, index: usize, count: usize) -> PathBuf {
    rundir
        .join("shards")
        .join(stage_name)
        .join(format!("{index}-of-{count}.jsonl"))
}

/// Scores shard `index` of `count` of the teacher-scoring stage `kind` of `cfg` into its file
/// under `rundir`, unless an earlier attempt finished it. Returns the file and what scoring it
/// measured (`None`: reused).
pub fn score_shard(
    cfg: &RunConfig,
    rundir: &Path,
    kind: StageKind,
    (index, count): (usize, usize),
    device: &Device,
    ctx: &StageContext<'_>,
) -> Result<(PathBuf, Option<StageStats>)> {
    if index >= count {
        return Err(Error::Other(format!(
            "shard {index} of {count} does not exist"
        )));
    }
    let (data, name) = scoring_stage(cfg, kind)?;
    let out = shard_path(rundir, &name, index, count);
    if out.is_file() {
        tracing::info!(stage = kind.as_str(), index, count, "shard reused");
        return Ok((out, None));
    }
    tracing::info!(stage = kind.as_str(), index, count, "scoring shard");
    let stats = measured(device, || {
        stages::score(cfg, &data, &out, device, ctx, Some((index, count)))
    })
    .map_err(|e| match e {
        Error::Stopped(m) => Error::Stopped(format!("stage {} shard {index}: {m}", kind.as_str())),
        e => Error::Other(format!("stage {} shard {index}: {e}", kind.as_str())),
    })?;
    Ok((out, Some(stats)))
}

/// The work of a teacher-scoring stage: the scores of every pair of `data` into `out`, merged
/// from the run's shards when the context has a [`ShardSource`] (a runner of the server, where
/// every scoring job uploads its scores, as one shard when the run is not sharded), else
/// computed here.
pub(super) fn score_split(
    cfg: &RunConfig,
    kind: StageKind,
    data: &Path,
    out: &Path,
    device: &Device,
    ctx: &StageContext<'_>,
) -> Result<Work> {
    match ctx.shards {
        Some(source) => merge_shards(
            kind,
            cfg.teacher_shards.max(1) as usize,
            data,
            out,
            source,
            ctx.observer,
        ),
        _ => stages::score(cfg, data, out, device, ctx, None),
    }
}

/// Fetches the `count` shards of stage `kind`, checks each against its range of `data`'s
/// pairs, and writes their concatenation to `out` (temp file + rename).
pub fn merge_shards(
    kind: StageKind,
    count: usize,
    data: &Path,
    out: &Path,
    source: &dyn ShardSource,
    observer: &dyn Observer,
) -> Result<Work> {
    let samples = read_samples(data)?;
    let pairs: Vec<(&str, &str)> = samples.iter().flat_map(|s| s.pairs()).collect();
    let dir = out.parent().unwrap_or(Path::new("."));
    let mut merged = AtomicFile::create(out)?;
    for (index, range) in shard_ranges(&samples, count, MAX_WINDOW)
        .into_iter()
        .enumerate()
    {
        let part = dir.join(format!(".shard-{index}-of-{count}.jsonl"));
        source.fetch(kind, index, count, &part)?;
        check_shard(&part, &pairs[range.clone()]).map_err(|e| {
            Error::Other(format!(
                "{} shard {index} of {count} from the server: {e}",
                kind.as_str()
            ))
        })?;
        let mut file = std::fs::File::open(&part).map_err(|e| Error::io(&part, e))?;
        std::io::copy(&mut file, &mut merged).map_err(|e| Error::io(out, e))?;
        std::fs::remove_file(&part).map_err(|e| Error::io(&part, e))?;
        observer.progress(range.end as u64, pairs.len() as u64, "pairs");
    }
    merged.commit()?;
    tracing::info!(
        stage = kind.as_str(),
        shards = count,
        pairs = pairs.len(),
        "shards merged"
    );
    Ok(Work::new(pairs.len() as u64, "pairs"))
}

/// Checks that the shard file at `path` holds one score line per pair of `pairs`, in order,
/// and ends with a newline (so that the files concatenate line by line).
pub fn check_shard(path: &Path, pairs: &[(&str, &str)]) -> Result<()> {
    let mut n = 0usize;
    for_each_score(path, |line_no, rec| {
        match pairs.get(n) {
            Some((q, p)) if rec.query == *q && rec.passage == *p => {}
            Some((q, _)) => {
                let field = if rec.query == *q { "passage" } else { "query" };
                return Err(Error::input(
                    path,
                    line_no,
                    field,
                    "does not match the data's pair at this position of the shard",
                ));
            }
            None => {
                return Err(Error::input(
                    path,
                    line_no,
                    "score",
                    format!("more lines than the {} pairs of this shard", pairs.len()),
                ))
            }
        }
        n += 1;
        Ok(())
    })?;
    if n != pairs.len() {
        return Err(Error::Other(format!(
            "{}: {n} score lines, but the shard has {} pairs: it is incomplete",
            path.display(),
            pairs.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.last().is_some_and(|b| *b != b'\n') {
        return Err(Error::Other(format!(
            "{}: the last line has no newline",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(q: &str, p: &str) -> String {
        format!("{{\"query\": \"{q}\", \"passage\": \"{p}\", \"score\": 1.0}}\n")
    }

    #[test]
    fn a_shard_must_hold_exactly_its_pairs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0-of-2.jsonl");
        let pairs = [("q", "a"), ("q", "b")];
        std::fs::write(&path, line("q", "a") + &line("q", "b")).unwrap();
        check_shard(&path, &pairs).unwrap();

        std::fs::write(&path, line("q", "a")).unwrap();
        let err = check_shard(&path, &pairs).unwrap_err().to_string();
        assert!(err.contains("incomplete"), "{err}");

        std::fs::write(&path, line("q", "b") + &line("q", "a")).unwrap();
        let err = check_shard(&path, &pairs).unwrap_err().to_string();
        assert!(err.contains(":1: passage"), "{err}");
        std::fs::write(&path, line("q", "a") + &line("other", "b")).unwrap();
        let err = check_shard(&path, &pairs).unwrap_err().to_string();
        assert!(err.contains(":2: query"), "{err}");

        std::fs::write(&path, line("q", "a") + &line("q", "b") + &line("q", "c")).unwrap();
        let err = check_shard(&path, &pairs).unwrap_err().to_string();
        assert!(err.contains(":3: score"), "{err}");

        let torn = line("q", "a") + line("q", "b").trim_end();
        std::fs::write(&path, torn).unwrap();
        let err = check_shard(&path, &pairs).unwrap_err().to_string();
        assert!(err.contains("no newline"), "{err}");
    }
}
