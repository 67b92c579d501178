//! Shared by the worker tests: demo inputs, an in-process server, and small API helpers.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use distillery_api::RunConfig;
use distillery_server::{app_with, AppState, Settings, Store};
use gpu_runner::demo::{write_demo_data, DemoOptions};
use gpu_runner::student::new_model::{write_new_model, Preset};
use serde_json::Value;

/// Demo data (40 train / 20 test queries) and a tiny student under `dir`; the run config.
pub fn demo_inputs(dir: &Path, epochs: u32) -> RunConfig {
    let opts = DemoOptions {
        train_queries: 40,
        test_queries: 20,
        ..DemoOptions::default()
    };
    let (train, test) = write_demo_data(&dir.join("data"), &opts).unwrap();
    write_new_model(Preset::Tiny, &dir.join("student"), None, 0).unwrap();
    RunConfig {
        teacher_kind: "bm25".into(),
        student: dir.join("student").display().to_string(),
        train_data: train.display().to_string(),
        test_data: test.display().to_string(),
        epochs,
        batch_size: 32,
        grad_accum: 1,
        lr: 2e-3,
        max_length: 64,
        ..RunConfig::default()
    }
}

/// Starts the server in-process (SQLite in memory) on a free loopback port; returns its URL.
pub fn start_server() -> String {
    start_server_with(Settings::default())
}

/// [`start_server`] keeping uploaded files (teacher-score shards) under `artifact_root`.
pub fn start_server_at(artifact_root: &Path) -> String {
    std::fs::create_dir_all(artifact_root).unwrap();
    start_server_with(Settings {
        artifact_root: artifact_root.to_path_buf(),
        ..Settings::default()
    })
}

fn start_server_with(settings: Settings) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let store = Store::connect("sqlite::memory:").await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app_with(AppState { store }, settings, None))
                .await
                .unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

/// A small blocking client of the API.
pub struct Client {
    pub base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            base: base.into(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    pub fn get(&self, path: &str) -> Value {
        self.try_get(path)
            .unwrap_or_else(|| panic!("GET {path} failed"))
    }

    /// GET that tolerates a server being down (None).
    pub fn try_get(&self, path: &str) -> Option<Value> {
        let resp = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .send()
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().ok()
    }

    pub fn post(&self, path: &str, body: &Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .json(body)
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
        resp.json().unwrap()
    }

    /// Launches a run and returns its id.
    pub fn launch(&self, config: &RunConfig) -> i64 {
        let run = self.post(
            "/runs",
            &serde_json::json!({"name": "worker test", "config": config, "tags": []}),
        );
        run["id"].as_i64().unwrap()
    }

    /// The run's stage of `kind`.
    pub fn stage(&self, run: i64, kind: &str) -> Value {
        let stages = self.get(&format!("/runs/{run}/stages"));
        stages
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no stage {kind}: {stages}"))
    }

    /// The stored steps of a series, ascending (empty while the server is down).
    pub fn series_steps(&self, run: i64, name: &str) -> Vec<i64> {
        self.try_get(&format!("/runs/{run}/series?name={name}&max_points=100000"))
            .and_then(|s| serde_json::from_value(s["steps"].clone()).ok())
            .unwrap_or_default()
    }

    /// Polls until `cond` holds, for at most `limit`.
    pub fn wait_for(&self, limit: Duration, what: &str, mut cond: impl FnMut(&Client) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the run to reach a final status and returns it.
    pub fn wait_final(&self, run: i64, limit: Duration) -> String {
        let mut status = String::new();
        self.wait_for(limit, "the run to finish", |c| {
            status = c
                .try_get(&format!("/runs/{run}"))
                .and_then(|r| r["status"].as_str().map(String::from))
                .unwrap_or_default();
            matches!(status.as_str(), "done" | "failed" | "cancelled")
        });
        status
    }

    /// The run's log lines (of one stage kind), oldest first.
    pub fn log_messages(&self, run: i64, stage: &str) -> Vec<String> {
        let lines = self.get(&format!("/runs/{run}/logs?stage={stage}&tail=5000"));
        lines
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// The number of optimizer updates a finished train stage reported (its "N/N updates").
pub fn total_updates(train_stage: &Value) -> i64 {
    let message = train_stage["message"].as_str().unwrap_or_default();
    let done = message.split('/').next().unwrap_or_default();
    done.parse()
        .unwrap_or_else(|_| panic!("train stage message {message:?}"))
}

/// Asserts that a series holds each step 1..=n exactly once.
pub fn assert_exact_steps(steps: &[i64], n: i64) {
    let expected: Vec<i64> = (1..=n).collect();
    assert_eq!(steps, expected.as_slice(), "series steps");
}
