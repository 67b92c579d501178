//! `gpu-runner work`: a runner that claims stage jobs from the server and runs each with
//! [`crate::pipeline::run_through_with`], the same library code as `gpu-runner pipeline`.
//!
//! Stage outputs live under `workdir/run-<id>/stages/…`, content-addressed, so a job whose
//! dependencies ran earlier on this runner reuses them. While a stage runs, [`reporter`]
//! streams its metric points, progress, checkpoints and log lines; reports that cannot reach
//! the server wait in an on-disk outbox ([`outbox`], [`transport`]). A report refused with 409
//! (the run was cancelled, or the lease expired) stops the stage at its next safe point.
//!
//! Sharded teacher scoring: a shard job scores only its range and uploads it ([`shards`]); a
//! stage that needs the merged scores fetches the shards from the server instead of scoring.
//!
//! Resuming: runners that share a workdir (one host, or a shared filesystem) resume each
//! other's training from the checkpoint the server handed back with the job; the checkpoint
//! is reported as a path relative to the workdir.

pub mod catalog;
pub mod logs;
pub mod manifest;
pub mod outbox;
pub mod reporter;
pub mod shards;
pub mod transport;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::Device;
use distillery_api::queue::{
    ClaimRequest, CompleteJob, EvalResult, FailJob, Job, RegisterRunner, Runner,
};
use distillery_api::{ReleaseJob, StageKind};

use crate::observe::StageContext;
use crate::pipeline::{run_through_with, Outcome};
use crate::{Error, Result};
use distillery_api::{ComparisonReport, QueryDetailBatch};
use logs::LogCapture;
use reporter::JobReporter;
use shards::{run_shard_job, ServerShards, ShardJob};
use transport::{sleep_unless, Transport};

/// How the worker reaches the server and where it works.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Server base URL, e.g. `http://127.0.0.1:8480`.
    pub server: String,
    /// Bearer token.
    pub token: String,
    /// Runner name (re-registering a name updates it).
    pub name: String,
    /// Where run directories and the outbox are kept.
    pub workdir: PathBuf,
    /// Pause between claims when no job is ready.
    pub poll: Duration,
    /// Lease asked for each job, in ms; heartbeats renew it every third of it.
    pub lease_ms: i64,
    /// Checkpoint the training every this many updates.
    pub checkpoint_every: Option<usize>,
    /// The captured stage logs to stream (the binary installs the layer).
    pub logs: Option<LogCapture>,
    /// Folders whose model directories and data files are offered to the launch form.
    pub catalog: Vec<PathBuf>,
    /// Stop after finishing this many jobs (completed or failed); `None` runs until stopped.
    pub max_jobs: Option<usize>,
}

impl WorkerOptions {
    /// Defaults: no token, 500 ms poll, 60 s lease, a checkpoint every 50 updates, no logs, no
    /// limit on jobs.
    pub fn new(server: &str, name: &str, workdir: &Path) -> Self {
        WorkerOptions {
            server: server.into(),
            token: String::new(),
            name: name.into(),
            workdir: workdir.into(),
            poll: Duration::from_millis(500),
            lease_ms: 60_000,
            checkpoint_every: Some(50),
            logs: None,
            catalog: Vec::new(),
            max_jobs: None,
        }
    }
}

/// How a job ended on this runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobEnd {
    Completed,
    Failed,
    /// The server no longer honours the lease (cancelled or requeued): nothing more to say.
    Dropped,
    /// The runner stops; the job went back to the queue.
    Released,
}

/// The runner's memo of model and data hashes, in its workdir.
pub const IDENTITY_FILE: &str = "identity-cache.json";
/// The runner's cross-run teacher-score cache, a directory in its workdir.
pub const SCORE_CACHE_DIR: &str = "score-cache";

fn outbox_dir(opts: &WorkerOptions) -> PathBuf {
    let name: String = opts
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    opts.workdir.join(format!("outbox-{name}"))
}

/// Registers, then claims and runs jobs until `stop` is set (then it checkpoints a training
/// stage and releases its job). Returns the number of jobs finished.
pub fn work(opts: &WorkerOptions, device: &Device, stop: &Arc<AtomicBool>) -> Result<usize> {
    std::fs::create_dir_all(&opts.workdir).map_err(|e| Error::io(&opts.workdir, e))?;
    // Model and data hashes are remembered across jobs and restarts; the CUDA pool keeps freed
    // memory for the next batch instead of returning it at every sync.
    crate::pipeline::identity::remember_in(&opts.workdir.join(IDENTITY_FILE))?;
    crate::cuda_mem::MemoryPool::of(device)?;
    let transport = Arc::new(Transport::new(
        &opts.server,
        &opts.token,
        &outbox_dir(opts),
    )?);
    let register = RegisterRunner {
        name: opts.name.clone(),
        device: crate::device::describe(device),
        memory_bytes: 0,
        catalog: catalog::scan(&opts.catalog)?,
    };
    let Some(resp) = transport.call_retrying("/runners", &register, stop)? else {
        return Ok(0);
    };
    let runner: Runner = resp
        .json()
        .map_err(|e| Error::Other(format!("server: {e}")))?;
    tracing::info!(id = runner.id, name = %runner.name, "registered");
    let done_flag = Arc::new(AtomicBool::new(false));
    let heartbeat = spawn_heartbeat(transport.clone(), runner.id, opts.lease_ms, &done_flag);
    let result = claim_loop(&transport, &runner, opts, device, stop);
    done_flag.store(true, Ordering::Relaxed);
    let _ = heartbeat.join();
    // One last try to deliver what is buffered; the rest waits on disk for the next start.
    transport.flush(&AtomicBool::new(true))?;
    result
}

fn spawn_heartbeat(
    transport: Arc<Transport>,
    runner_id: i64,
    lease_ms: i64,
    done: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let every = Duration::from_millis((lease_ms / 3).clamp(100, 5000) as u64);
    let done = done.clone();
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            if let Err(e) = transport.call(&format!("/runners/{runner_id}/heartbeat"), &()) {
                tracing::warn!("heartbeat: {e}");
            }
            sleep_unless(&done, every);
        }
    })
}

fn claim_loop(
    transport: &Transport,
    runner: &Runner,
    opts: &WorkerOptions,
    device: &Device,
    stop: &AtomicBool,
) -> Result<usize> {
    let claim = ClaimRequest {
        lease_ms: Some(opts.lease_ms),
        kinds: Vec::new(),
    };
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) && opts.max_jobs.is_none_or(|max| done < max) {
        // Reports of the last job go first, so the server sees it finished before the claim.
        transport.flush(stop)?;
        let path = format!("/runners/{}/claim", runner.id);
        let Some(resp) = transport.call_retrying(&path, &claim, stop)? else {
            break;
        };
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            sleep_unless(stop, opts.poll);
            continue;
        }
        let job: Job = resp
            .json()
            .map_err(|e| Error::Other(format!("server: claim: {e}")))?;
        match run_job(transport, opts, &job, device, stop)? {
            JobEnd::Completed | JobEnd::Failed => done += 1,
            JobEnd::Dropped => {}
            JobEnd::Released => break,
        }
    }
    Ok(done)
}

/// The update of a `…/checkpoint-<step>` path.
fn checkpoint_step(path: &str) -> Option<usize> {
    Path::new(path)
        .file_name()?
        .to_str()?
        .strip_prefix("checkpoint-")?
        .parse()
        .ok()
}

fn run_job(
    transport: &Transport,
    opts: &WorkerOptions,
    job: &Job,
    device: &Device,
    stop: &AtomicBool,
) -> Result<JobEnd> {
    if let Some(logs) = &opts.logs {
        logs.arm();
    }
    tracing::info!(
        job = job.id,
        run = job.run_id,
        stage = job.kind.as_str(),
        attempt = job.attempt,
        "claimed"
    );
    let reporter = JobReporter::new(transport, job, &opts.workdir, opts.logs.as_ref(), stop);
    // Resume only from what the server acknowledged: every metric point up to that update
    // was delivered before it, so the series loses no step.
    let resume_max_step = job.checkpoint.as_deref().and_then(checkpoint_step);
    if let Some(step) = resume_max_step {
        tracing::info!(
            job = job.id,
            step,
            "resuming from the checkpoint of update {step}"
        );
    }
    let score_cache = opts.workdir.join(SCORE_CACHE_DIR);
    let server_shards = ServerShards {
        transport,
        run_id: job.run_id,
        stop,
    };
    let ctx = StageContext {
        observer: &reporter,
        checkpoint_every: opts.checkpoint_every,
        resume_max_step: Some(resume_max_step.unwrap_or(0)),
        shards: Some(&server_shards),
        score_cache: Some(&score_cache),
    };
    if let Some(shard) = job.shard {
        let work = ShardJob {
            job,
            shard,
            reporter: &reporter,
            ctx,
            stop,
        };
        return run_shard_job(transport, opts, device, work);
    }
    let rundir = opts.workdir.join(format!("run-{}", job.run_id));
    let result = run_through_with(&job.config, &rundir, device, Some(job.kind), ctx);
    reporter.flush(None);
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => return end_on_error(transport, opts, job, &reporter, e),
    };
    let (reused, dir, stats) = match &outcome {
        // A reused stage's work was done by an earlier attempt of this job that never
        // completed (the run directory is the run's own), so its stats are reported now; the
        // server merges stats once per completed job.
        Outcome::Stopped(rec) => (rec.reused, rundir.join(&rec.dir), rec.stats.clone()),
        // The last stage (the comparison) ran in this job unless it was reused.
        Outcome::Done(report) => {
            let last = report.stages.last();
            (false, rundir.clone(), last.and_then(|r| r.stats.clone()))
        }
    };
    let evals = match eval_label(job.kind) {
        Some(label) => vec![eval_result(label, &job.config, &dir)?],
        None => Vec::new(),
    };
    reporter.upload_outputs(&dir)?;
    tracing::info!(job = job.id, reused, "completed");
    reporter.finish_logs();
    if reporter.lost() {
        return Ok(JobEnd::Dropped);
    }
    if let Outcome::Done(report) = &outcome {
        let details = crate::pipeline::query_detail::read(&report.query_detail)?;
        for queries in crate::pipeline::query_detail::batches(&details, 4 << 20) {
            let batch = QueryDetailBatch {
                lease: job.lease.clone(),
                queries: queries.to_vec(),
            };
            transport.report(&format!("/jobs/{}/queries", job.id), &batch)?;
        }
        let comparison = ComparisonReport {
            lease: job.lease.clone(),
            metrics: report.metric_comparisons()?,
        };
        transport.report(&format!("/jobs/{}/comparison", job.id), &comparison)?;
    }
    let complete = CompleteJob {
        lease: job.lease.clone(),
        skipped: reused,
        message: None,
        evals,
        queries: Vec::new(),
        manifest: manifest::facts(&job.config, device, &outcome)?,
        stats,
    };
    transport.report(&format!("/jobs/{}/complete", job.id), &complete)?;
    Ok(JobEnd::Completed)
}

/// Ends a job whose stage returned `e`: dropped when the server took the job back, released
/// when the runner stops, failed otherwise.
fn end_on_error(
    transport: &Transport,
    opts: &WorkerOptions,
    job: &Job,
    reporter: &JobReporter<'_>,
    e: Error,
) -> Result<JobEnd> {
    match e {
        Error::Stopped(m) if reporter.lost() => {
            tracing::info!(job = job.id, "the server took the job back: {m}");
            reporter.finish_logs();
            Ok(JobEnd::Dropped)
        }
        Error::Stopped(m) => {
            tracing::info!(job = job.id, "runner stopping; releasing the job: {m}");
            reporter.finish_logs();
            let release = ReleaseJob {
                lease: job.lease.clone(),
                checkpoint: None,
                message: Some(format!("released by {}: {m}", opts.name)),
            };
            transport.report(&format!("/jobs/{}/release", job.id), &release)?;
            Ok(JobEnd::Released)
        }
        e => {
            tracing::warn!(job = job.id, "stage failed: {e}");
            reporter.finish_logs();
            let fail = FailJob {
                lease: job.lease.clone(),
                message: e.to_string(),
            };
            transport.report(&format!("/jobs/{}/fail", job.id), &fail)?;
            Ok(JobEnd::Failed)
        }
    }
}

fn eval_label(kind: StageKind) -> Option<&'static str> {
    match kind {
        StageKind::EvalBefore => Some("student_before"),
        StageKind::EvalAfter => Some("student_after"),
        StageKind::EvalTeacher => Some("teacher"),
        _ => None,
    }
}

fn eval_result(
    label: &str,
    cfg: &distillery_api::RunConfig,
    dir: &std::path::Path,
) -> Result<EvalResult> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let samples = crate::data::read_samples(std::path::Path::new(&cfg.test_data))?;
    Ok(EvalResult {
        label: label.into(),
        at_k: cfg.at_k,
        map: num("map"),
        mrr: num("mrr"),
        ndcg: num("ndcg"),
        n_queries: v["queries"].as_i64().unwrap_or(0),
        n_pairs: samples.iter().map(|s| s.n_pairs() as i64).sum(),
        ci: serde_json::Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_step_reads_the_directory_name() {
        assert_eq!(
            checkpoint_step("run-1/stages/.train-ab.tmp/model/checkpoint-40"),
            Some(40)
        );
        assert_eq!(checkpoint_step("run-1/stages/x/model"), None);
    }
}
