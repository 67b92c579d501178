//! A worker against an in-process server (SQLite in memory) takes a BM25 demo run to done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Device;
use distillery_api::RunConfig;
use distillery_server::{app, AppState, Store};
use gpu_runner::demo::{write_demo_data, DemoOptions};
use gpu_runner::student::new_model::{write_new_model, Preset};
use gpu_runner::worker::{work, WorkerOptions};

fn start_server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let store = Store::connect("sqlite::memory:").await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app(AppState { store }, None))
                .await
                .unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

#[test]
fn worker_takes_a_bm25_demo_run_to_done() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DemoOptions {
        train_queries: 40,
        test_queries: 20,
        ..DemoOptions::default()
    };
    let (train, test) = write_demo_data(&dir.path().join("data"), &opts).unwrap();
    write_new_model(Preset::Tiny, &dir.path().join("student"), None, 0).unwrap();
    let server = start_server();
    let config = RunConfig {
        teacher_kind: "bm25".into(),
        student: dir.path().join("student").display().to_string(),
        train_data: train.display().to_string(),
        test_data: test.display().to_string(),
        batch_size: 32,
        grad_accum: 1,
        lr: 2e-3,
        max_length: 64,
        ..RunConfig::default()
    };
    let http = reqwest::blocking::Client::new();
    let run: serde_json::Value = http
        .post(format!("{server}/api/v1/runs"))
        .json(&serde_json::json!({"name": "demo (BM25 teacher, synthetic data)", "config": config, "tags": []}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = run["id"].as_i64().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        let opts = WorkerOptions {
            server: server.clone(),
            token: String::new(),
            name: "test-cpu".into(),
            workdir: dir.path().join("runner"),
            poll: Duration::from_millis(100),
            lease_ms: 600_000,
        };
        std::thread::spawn(move || work(&opts, &Device::Cpu, &stop))
    };
    let start = Instant::now();
    let status = loop {
        let run: serde_json::Value = http
            .get(format!("{server}/api/v1/runs/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let status = run["status"].as_str().unwrap().to_string();
        if status == "done" || status == "failed" || start.elapsed() > Duration::from_secs(60) {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    stop.store(true, Ordering::Relaxed);
    let jobs = worker.join().unwrap().unwrap();
    assert_eq!(status, "done");
    assert_eq!(jobs, 9);
    let evals: Vec<serde_json::Value> = http
        .get(format!("{server}/api/v1/runs/{id}/evals"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let labels: Vec<&str> = evals.iter().filter_map(|e| e["label"].as_str()).collect();
    for label in ["student_before", "student_after", "teacher"] {
        assert!(labels.contains(&label), "{labels:?}");
    }
    // The compare stage's per-query detail and paired comparison reached the server.
    let get = |path: &str| -> serde_json::Value {
        let url = format!("{server}/api/v1/runs/{id}{path}");
        http.get(url).send().unwrap().json().unwrap()
    };
    let page = get("/queries?order=delta_asc&limit=5");
    assert_eq!(page["total"], 20, "{page}");
    let first = &page["items"][0];
    assert_eq!(first["has_detail"], true, "{first}");
    let detail = get(&format!("/queries/{}", first["query_id"].as_str().unwrap()));
    let docs = detail["n_positive"].as_u64().unwrap() + detail["n_negative"].as_u64().unwrap();
    let top = detail["top_after"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(top, docs.min(10), "{detail}");
    let rows = get("/metrics");
    assert!(rows[0]["p_value"].as_f64().is_some(), "{rows}");
}
