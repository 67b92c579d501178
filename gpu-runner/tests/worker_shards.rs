//! Sharded teacher scoring with two runners that share nothing but the server: each scores
//! one shard of the training split and uploads it; the stages that need the merged scores
//! fetch the shards from the server instead of scoring again; the run's score files and
//! metrics equal those of the same configuration run unsharded.

mod worker_support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use candle_core::Device;
use distillery_api::RunConfig;
use gpu_runner::worker::logs::LogCapture;
use gpu_runner::worker::{work, WorkerOptions};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;
use worker_support::{demo_inputs, start_server_at, Client};

fn options(server: &str, name: &str, workdir: &Path, max_jobs: Option<usize>) -> WorkerOptions {
    let mut opts = WorkerOptions::new(server, name, workdir);
    opts.poll = Duration::from_millis(100);
    opts.max_jobs = max_jobs;
    opts
}

/// Runs a worker on its own thread, its log lines streamed to the server, until `stop`.
fn spawn(mut opts: WorkerOptions, stop: &Arc<AtomicBool>) -> JoinHandle<usize> {
    let stop = stop.clone();
    let logs = LogCapture::default();
    opts.logs = Some(logs.clone());
    std::thread::spawn(move || {
        let subscriber = tracing_subscriber::registry().with(logs);
        tracing::subscriber::with_default(subscriber, || work(&opts, &Device::Cpu, &stop).unwrap())
    })
}

/// The score file of stage `kind` of `run`, from whichever workdir holds it.
fn score_file(workdirs: &[&Path], run: i64, kind: &str) -> (String, Vec<u8>) {
    for workdir in workdirs {
        let stages = workdir.join(format!("run-{run}/stages"));
        let Ok(entries) = std::fs::read_dir(&stages) else {
            continue;
        };
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{kind}-")) {
                let path: PathBuf = stages.join(&name).join("scores.jsonl");
                return (name, std::fs::read(path).unwrap());
            }
        }
    }
    panic!("no {kind} stage of run {run} in {workdirs:?}")
}

/// The run's evaluations by label: (map, mrr, ndcg).
fn evals(api: &Client, run: i64) -> Vec<(String, f64, f64, f64)> {
    let mut out: Vec<_> = api
        .get(&format!("/runs/{run}/evals"))
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let num = |k: &str| e[k].as_f64().unwrap();
            let label = e["label"].as_str().unwrap().to_string();
            (label, num("map"), num("mrr"), num("ndcg"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn runner_id(api: &Client, name: &str) -> Value {
    let runners = api.get("/runners");
    runners
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["id"].clone())
        .unwrap_or_else(|| panic!("no runner {name}: {runners}"))
}

#[test]
fn two_runners_score_the_shards_and_the_run_equals_an_unsharded_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_inputs(dir.path(), 1);
    let server = start_server_at(&dir.path().join("server-artifacts"));
    let api = Client::new(&server);
    let (a_dir, b_dir, c_dir) = (
        dir.path().join("runner-a"),
        dir.path().join("runner-b"),
        dir.path().join("runner-c"),
    );

    let sharded = api.launch(&RunConfig {
        teacher_shards: 2,
        ..config.clone()
    });
    // One job each first, so that the training split's two shards go to different runners.
    let stop = Arc::new(AtomicBool::new(false));
    let once = |name: &str, workdir: &Path| {
        work(
            &options(&server, name, workdir, Some(1)),
            &Device::Cpu,
            &stop,
        )
        .unwrap()
    };
    assert_eq!(once("a", &a_dir), 1);
    assert_eq!(once("b", &b_dir), 1);
    let a = spawn(options(&server, "a", &a_dir, None), &stop);
    let b = spawn(options(&server, "b", &b_dir, None), &stop);
    let status = api.wait_final(sharded, Duration::from_secs(180));
    stop.store(true, Ordering::Relaxed);
    let finished = a.join().unwrap() + b.join().unwrap();
    assert_eq!(status, "done");

    let jobs = api.get(&format!("/runs/{sharded}/jobs"));
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 11, "two jobs per scoring stage: {jobs:?}");
    assert_eq!(finished + 2, 11, "every job finished once");
    let shard_runners = |kind: &str| -> Vec<(Value, Value)> {
        jobs.iter()
            .filter(|j| j["kind"] == kind)
            .map(|j| {
                assert_eq!(j["status"], "done", "{j}");
                (j["shard"].clone(), j["runner_id"].clone())
            })
            .collect()
    };
    let (a_id, b_id) = (runner_id(&api, "a"), runner_id(&api, "b"));
    assert_ne!(a_id, b_id);
    assert_eq!(
        shard_runners("score_train"),
        [
            (serde_json::json!({"index": 0, "count": 2}), a_id),
            (serde_json::json!({"index": 1, "count": 2}), b_id),
        ]
    );
    assert_eq!(shard_runners("score_test").len(), 2);

    // The stages that read the scores merged the uploaded shards.
    for stage in ["triplets_train", "triplets_test"] {
        let messages = api.log_messages(sharded, stage);
        assert!(
            messages.iter().any(|m| m.contains("shards merged")),
            "{stage}: {messages:?}"
        );
        assert!(
            !messages.iter().any(|m| m.contains("scoring shard")),
            "{stage} scored again: {messages:?}"
        );
    }

    // The same configuration, unsharded, on a third runner.
    let unsharded = api.launch(&config);
    let c_stop = Arc::new(AtomicBool::new(false));
    let c = spawn(options(&server, "c", &c_dir, None), &c_stop);
    let status = api.wait_final(unsharded, Duration::from_secs(180));
    c_stop.store(true, Ordering::Relaxed);
    assert_eq!(c.join().unwrap(), 9);
    assert_eq!(status, "done");

    for kind in ["score_train", "score_test"] {
        let (sharded_dir, sharded_bytes) = score_file(&[&a_dir, &b_dir], sharded, kind);
        let (plain_dir, plain_bytes) = score_file(&[&c_dir], unsharded, kind);
        assert_eq!(sharded_dir, plain_dir, "same content-addressed stage");
        assert!(!plain_bytes.is_empty());
        assert!(sharded_bytes == plain_bytes, "{kind} scores differ");
    }
    let (with_shards, without) = (evals(&api, sharded), evals(&api, unsharded));
    assert_eq!(with_shards.len(), 3);
    assert_eq!(with_shards, without);
}

/// An unsharded run's teacher scores also travel through the server: the runner that scored the
/// training split uploads it as the stage's only shard, and another runner, which shares no
/// workdir with it, downloads those scores for the triplets instead of running the teacher again.
#[test]
fn an_unsharded_runs_scores_reach_a_runner_that_did_not_score_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_inputs(dir.path(), 1);
    let server = start_server_at(&dir.path().join("server-artifacts"));
    let api = Client::new(&server);
    let (a_dir, b_dir) = (dir.path().join("runner-a"), dir.path().join("runner-b"));
    let run = api.launch(&config);
    let stop = Arc::new(AtomicBool::new(false));
    // Runner a takes the oldest ready job, the training split's scoring, and stops.
    let taken = work(&options(&server, "a", &a_dir, Some(1)), &Device::Cpu, &stop).unwrap();
    assert_eq!(taken, 1);
    let b = spawn(options(&server, "b", &b_dir, None), &stop);
    let status = api.wait_final(run, Duration::from_secs(180));
    stop.store(true, Ordering::Relaxed);
    assert_eq!(b.join().unwrap(), 8);
    assert_eq!(status, "done");

    let jobs = api.get(&format!("/runs/{run}/jobs"));
    let score_train = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "score_train")
        .unwrap();
    assert_eq!(score_train["runner_id"], runner_id(&api, "a"));
    assert_eq!(
        score_train["shard"],
        serde_json::json!({"index": 0, "count": 1})
    );
    let messages = api.log_messages(run, "triplets_train");
    assert!(
        messages.iter().any(|m| m.contains("shards merged")),
        "{messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains("scoring")),
        "runner b scored again: {messages:?}"
    );
    // Runner b's training-split scores are runner a's file, byte for byte.
    let (stage, merged) = score_file(&[&b_dir], run, "score_train");
    let uploaded = std::fs::read(
        a_dir
            .join(format!("run-{run}/shards"))
            .join(&stage)
            .join("0-of-1.jsonl"),
    )
    .unwrap();
    assert!(!merged.is_empty());
    assert!(
        merged == uploaded,
        "the merged scores differ from the scored ones"
    );
}
