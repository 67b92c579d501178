//! Shard jobs of a sharded teacher scoring, and where the merged scores come from.
//!
//! A shard job scores its range with [`crate::pipeline::shards::score_shard`], uploads the
//! file to the server (`PUT /jobs/{id}/shard`, retried with backoff; the server replaces the
//! file on a retry) and completes. A later stage that needs the split's scores on a runner that
//! lacks them fetches every shard back ([`ServerShards`]) instead of scoring again.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use distillery_api::{CompleteJob, Job, Shard, ShardStored, StageKind};
use sha2::Digest;

use super::reporter::JobReporter;
use super::transport::{SendError, Transport};
use super::{end_on_error, JobEnd, WorkerOptions};
use crate::observe::StageContext;
use crate::pipeline::shards::{score_shard, ShardSource};
use crate::{Error, Result};

/// The shards of one run, fetched from the server.
pub struct ServerShards<'a> {
    pub transport: &'a Transport,
    pub run_id: i64,
    /// Set when the runner stops: retries end.
    pub stop: &'a AtomicBool,
}

impl ShardSource for ServerShards<'_> {
    fn fetch(&self, kind: StageKind, index: usize, count: usize, dest: &Path) -> Result<()> {
        let path = format!("/runs/{}/shards/{}/{index}", self.run_id, kind.as_str());
        tracing::info!(stage = kind.as_str(), index, count, "fetching shard");
        match self
            .transport
            .retry(self.stop, || self.transport.download(&path, dest))
        {
            Ok(Some(())) => Ok(()),
            Ok(None) => Err(Error::Stopped(format!(
                "runner stopping while fetching shard {index} of {count}"
            ))),
            Err(e) => Err(Error::Other(format!(
                "fetching shard {index} of {count} of {}: {e}",
                kind.as_str()
            ))),
        }
    }
}

/// What a shard job runs with.
pub(super) struct ShardJob<'a> {
    pub job: &'a Job,
    pub shard: Shard,
    pub reporter: &'a JobReporter<'a>,
    pub ctx: StageContext<'a>,
    pub stop: &'a AtomicBool,
}

/// Runs a shard job: scores its range, uploads the file, completes the job.
pub(super) fn run_shard_job(
    transport: &Transport,
    opts: &WorkerOptions,
    device: &Device,
    work: ShardJob<'_>,
) -> Result<JobEnd> {
    let ShardJob {
        job,
        shard,
        reporter,
        ctx,
        stop,
    } = work;
    let rundir = opts.workdir.join(format!("run-{}", job.run_id));
    let range = (shard.index as usize, shard.count as usize);
    let result = score_shard(&job.config, &rundir, job.kind, range, device, &ctx);
    reporter.flush(None);
    let (file, stats) = match result {
        Ok(done) => done,
        Err(e) => return end_on_error(transport, opts, job, reporter, e),
    };
    let path = format!("/jobs/{}/shard", job.id);
    let stored = match transport.retry(stop, || transport.upload(&path, &file, &job.lease)) {
        Ok(Some(resp)) => match resp.json::<ShardStored>() {
            Ok(stored) => stored,
            Err(e) => {
                let bad = Error::Other(format!("server: shard upload answer: {e}"));
                return end_on_error(transport, opts, job, reporter, bad);
            }
        },
        Ok(None) => {
            let stopped = Error::Stopped("while uploading the shard".into());
            return end_on_error(transport, opts, job, reporter, stopped);
        }
        Err(SendError::Refused(409 | 404, m)) => {
            tracing::info!(job = job.id, "the server took the job back: {m}");
            reporter.finish_logs();
            return Ok(JobEnd::Dropped);
        }
        Err(e) => {
            let refused = Error::Other(format!("uploading {}: {e}", file.display()));
            return end_on_error(transport, opts, job, reporter, refused);
        }
    };
    let local = sha256_of(&file)?;
    if stored.sha256 != local {
        let corrupted = Error::Other(format!(
            "the server stored shard {} of {} with SHA-256 {}, not {local}",
            shard.index, shard.count, stored.sha256
        ));
        return end_on_error(transport, opts, job, reporter, corrupted);
    }
    tracing::info!(
        job = job.id,
        shard = shard.index,
        of = shard.count,
        bytes = stored.size_bytes,
        reused = stats.is_none(),
        "shard uploaded"
    );
    reporter.finish_logs();
    if reporter.lost() {
        return Ok(JobEnd::Dropped);
    }
    let complete = CompleteJob {
        lease: job.lease.clone(),
        skipped: stats.is_none(),
        message: None,
        evals: Vec::new(),
        queries: Vec::new(),
        manifest: super::manifest::environment(device),
        stats,
    };
    transport.report(&format!("/jobs/{}/complete", job.id), &complete)?;
    Ok(JobEnd::Completed)
}

/// The hex SHA-256 of a file, streamed.
fn sha256_of(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(hasher.finalize()))
}
