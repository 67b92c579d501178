//! A worker against an in-process server (SQLite in memory) takes a BM25 demo run to done,
//! streaming the training's series, progress, its log lines and the stages' small outputs.

mod worker_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::Device;
use gpu_runner::worker::logs::LogCapture;
use gpu_runner::worker::{work, WorkerOptions};
use tracing_subscriber::layer::SubscriberExt;
use worker_support::{assert_exact_steps, demo_inputs, start_server, total_updates, Client};

#[test]
fn worker_takes_a_bm25_demo_run_to_done_and_streams_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_inputs(dir.path(), 1);
    let server = start_server();
    let api = Client::new(&server);
    let id = api.launch(&config);

    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        let logs = LogCapture::default();
        let mut opts = WorkerOptions::new(&server, "test-cpu", &dir.path().join("runner"));
        opts.poll = Duration::from_millis(100);
        opts.checkpoint_every = Some(10);
        opts.logs = Some(logs.clone());
        std::thread::spawn(move || {
            let subscriber = tracing_subscriber::registry().with(logs);
            tracing::subscriber::with_default(subscriber, || work(&opts, &Device::Cpu, &stop))
        })
    };
    let status = api.wait_final(id, Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    let jobs = worker.join().unwrap().unwrap();
    assert_eq!(status, "done");
    assert_eq!(jobs, 9);

    let evals = api.get(&format!("/runs/{id}/evals"));
    let labels: Vec<&str> = evals
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["label"].as_str())
        .collect();
    for label in ["student_before", "student_after", "teacher"] {
        assert!(labels.contains(&label), "{labels:?}");
    }

    // Every optimizer update of the training is a point of loss, lr and grad_norm.
    let train = api.stage(id, "train");
    let n = total_updates(&train);
    assert!(n >= 10, "{train}");
    assert!(
        train["message"].as_str().unwrap().contains("updates"),
        "{train}"
    );
    for name in ["loss", "lr", "grad_norm"] {
        assert_exact_steps(&api.series_steps(id, name), n);
    }
    // Every stage reported what its work measured, and the manifest reached the server.
    for kind in distillery_api::StageKind::ALL {
        let stage = api.stage(id, kind.as_str());
        let stats = &stage["stats"];
        assert!(stats["seconds"].as_f64().unwrap() >= 0.0, "{stage}");
        assert!(stats["items"].as_u64().unwrap() > 0, "{stage}");
    }
    assert_eq!(api.stage(id, "train")["stats"]["unit"], "triplets");
    let manifest = &api.get(&format!("/runs/{id}"))["manifest"];
    assert!(
        manifest["device"].as_str().unwrap().starts_with("cpu"),
        "{manifest}"
    );
    assert!(manifest["git_commit"].is_string(), "{manifest}");
    assert_eq!(manifest["student_hash"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["stage.compare"]["reused"], false, "{manifest}");
    let eval_after = api.stage(id, "eval_after");
    assert!(
        eval_after["message"].as_str().unwrap().contains("pairs"),
        "{eval_after}"
    );

    // Every checkpoint was acknowledged, so only the newest two were kept.
    let stages = dir.path().join(format!("runner/run-{id}/stages"));
    let train_dir = std::fs::read_dir(&stages)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("train-"))
        .unwrap()
        .path();
    let mut kept: Vec<i64> = std::fs::read_dir(train_dir.join("model"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("checkpoint-")?.parse().ok()
        })
        .collect();
    kept.sort_unstable();
    let last = n - n % 10;
    assert_eq!(
        kept,
        [last - 10, last],
        "checkpoints every 10 of {n} updates"
    );

    // The training's log lines reached the server, numbered from 0 in order.
    let lines = api.get(&format!("/runs/{id}/logs?stage=train&tail=50"));
    let lines = lines.as_array().unwrap();
    assert!(!lines.is_empty());
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let messages = api.log_messages(id, "train");
    assert!(
        messages.iter().any(|m| m.contains("claimed")),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m.contains("saved")), "{messages:?}");
    let all = api.get(&format!("/runs/{id}/logs?tail=5000"));
    assert!(all.as_array().unwrap().len() > lines.len());

    // Small outputs were uploaded as artifacts.
    let artifacts = api.get(&format!("/runs/{id}/artifacts"));
    let kinds: Vec<&str> = artifacts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    for kind in [
        "scores",
        "triplets",
        "summary",
        "per_query",
        "train_log",
        "report",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }

    // The compare stage's per-query detail and paired comparison reached the server.
    let page = api.get(&format!("/runs/{id}/queries?order=delta_asc&limit=5"));
    assert_eq!(page["total"], 20, "{page}");
    let first = &page["items"][0];
    assert_eq!(first["has_detail"], true, "{first}");
    let detail = api.get(&format!(
        "/runs/{id}/queries/{}",
        first["query_id"].as_str().unwrap()
    ));
    let docs = detail["n_positive"].as_u64().unwrap() + detail["n_negative"].as_u64().unwrap();
    let top = detail["top_after"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(top, docs.min(10), "{detail}");
    let rows = api.get(&format!("/runs/{id}/metrics"));
    assert!(rows[0]["p_value"].as_f64().is_some(), "{rows}");
}
