//! `gpu-runner work`: a runner that claims stage jobs from the server and runs each with
//! [`crate::pipeline::run_through`], the same library code as `gpu-runner pipeline`.
//!
//! Stage outputs live under `workdir/run-<id>/stages/…`, content-addressed, so a job whose
//! dependencies ran earlier on this runner reuses them. The lease covers a whole stage
//! (progress inside a stage is not reported yet).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::Device;
use distillery_api::queue::{
    ClaimRequest, CompleteJob, EvalResult, FailJob, Job, RegisterRunner, Runner,
};
use distillery_api::{ComparisonReport, QueryDetailBatch, StageKind};
use serde::Serialize;

use crate::pipeline::{run_through, Outcome};
use crate::{Error, Result};

/// How the worker reaches the server and where it works.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Server base URL, e.g. `http://127.0.0.1:8480`.
    pub server: String,
    /// Bearer token.
    pub token: String,
    /// Runner name (re-registering a name updates it).
    pub name: String,
    /// Where run directories are kept.
    pub workdir: PathBuf,
    /// Pause between claims when no job is ready.
    pub poll: Duration,
    /// Lease asked for each job, in ms.
    pub lease_ms: i64,
}

struct Api {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
}

fn net(e: reqwest::Error) -> Error {
    Error::Other(format!("server: {e}"))
}

impl Api {
    fn post<T: Serialize>(&self, path: &str, body: &T) -> Result<reqwest::blocking::Response> {
        let resp = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .map_err(net)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        Err(Error::Other(format!(
            "server: POST {path}: {status}: {text}"
        )))
    }
}

/// Registers, then claims and runs jobs until `stop` is set. Returns the number of jobs done.
pub fn work(opts: &WorkerOptions, device: &Device, stop: &Arc<AtomicBool>) -> Result<usize> {
    let api = Arc::new(Api {
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(net)?,
        base: opts.server.trim_end_matches('/').to_string(),
        token: opts.token.clone(),
    });
    let register = RegisterRunner {
        name: opts.name.clone(),
        device: crate::device::describe(device),
        memory_bytes: 0,
    };
    let runner: Runner = api.post("/runners", &register)?.json().map_err(net)?;
    tracing::info!(id = runner.id, name = %runner.name, "registered");
    let heartbeat = {
        let (api, stop) = (api.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = api.post(&format!("/runners/{}/heartbeat", runner.id), &()) {
                    tracing::warn!("heartbeat: {e}");
                }
                for _ in 0..50 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };
    let mut done = 0;
    let claim = ClaimRequest {
        lease_ms: Some(opts.lease_ms),
        kinds: Vec::new(),
    };
    while !stop.load(Ordering::Relaxed) {
        let resp = api.post(&format!("/runners/{}/claim", runner.id), &claim)?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            std::thread::sleep(opts.poll);
            continue;
        }
        let job: Job = resp.json().map_err(net)?;
        run_job(&api, opts, &job, device)?;
        done += 1;
    }
    let _ = heartbeat.join();
    Ok(done)
}

fn run_job(api: &Api, opts: &WorkerOptions, job: &Job, device: &Device) -> Result<()> {
    tracing::info!(
        job = job.id,
        run = job.run_id,
        stage = job.kind.as_str(),
        "claimed"
    );
    let rundir = opts.workdir.join(format!("run-{}", job.run_id));
    let outcome = match run_through(&job.config, &rundir, device, Some(job.kind)) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(job = job.id, "stage failed: {e}");
            let fail = FailJob {
                lease: job.lease.clone(),
                message: e.to_string(),
            };
            api.post(&format!("/jobs/{}/fail", job.id), &fail)?;
            return Ok(());
        }
    };
    let (reused, dir) = match &outcome {
        Outcome::Stopped(rec) => (rec.reused, rundir.join(&rec.dir)),
        Outcome::Done(_) => (false, rundir.clone()),
    };
    let evals = match eval_label(job.kind) {
        Some(label) => vec![eval_result(label, &job.config, &dir)?],
        None => Vec::new(),
    };
    if let Outcome::Done(report) = &outcome {
        let details = crate::pipeline::query_detail::read(&report.query_detail)?;
        for queries in crate::pipeline::query_detail::batches(&details, 4 << 20) {
            let batch = QueryDetailBatch {
                lease: job.lease.clone(),
                queries: queries.to_vec(),
            };
            api.post(&format!("/jobs/{}/queries", job.id), &batch)?;
        }
        let metrics = report.metric_comparisons()?;
        let comparison = ComparisonReport {
            lease: job.lease.clone(),
            metrics,
        };
        api.post(&format!("/jobs/{}/comparison", job.id), &comparison)?;
    }
    let complete = CompleteJob {
        lease: job.lease.clone(),
        skipped: reused,
        message: None,
        evals,
        queries: Vec::new(),
        manifest: Default::default(),
    };
    api.post(&format!("/jobs/{}/complete", job.id), &complete)?;
    tracing::info!(job = job.id, reused, "completed");
    Ok(())
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
