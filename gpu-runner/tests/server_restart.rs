//! Crash safety of the transport: the server, a real process on a SQLite file and a fixed
//! port, is killed (SIGKILL) in the middle of training and started again; the runner buffers
//! its reports in its outbox meanwhile, reconnects, replays them, and the run completes with
//! every step of the loss series exactly once.
//!
//! This file has its own `main` (`harness = false`): run with `DISTILLERY_TEST_SERVE=DB,PORT`
//! it is the server process; otherwise it runs the test.

mod worker_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::Device;
use distillery_server::{app, queue, AppState, Store};
use gpu_runner::worker::{work, WorkerOptions};
use worker_support::{assert_exact_steps, demo_inputs, total_updates, Client};

const SERVE_ENV: &str = "DISTILLERY_TEST_SERVE";

/// The server process: serves `sqlite://DB` on 127.0.0.1:PORT until killed.
fn serve(spec: &str) {
    let (db, port) = spec.rsplit_once(',').expect("DB,PORT");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = Store::connect(&format!("sqlite://{db}")).await.unwrap();
        queue::spawn_reaper(store.clone(), Duration::from_secs(1));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.parse().unwrap()))
            .await
            .unwrap();
        axum::serve(listener, app(AppState { store }, None))
            .await
            .unwrap();
    });
}

/// A child process, killed (SIGKILL) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server_process(db: &Path, port: u16) -> Process {
    let child = Command::new(std::env::current_exe().unwrap())
        .env(SERVE_ENV, format!("{},{port}", db.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Process(child)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn server_restart_mid_run_the_runner_reconnects_and_the_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_inputs(dir.path(), 2);
    let db = dir.path().join("distillery.db");
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let api = Client::new(&server);
    let process = start_server_process(&db, port);
    api.wait_for(Duration::from_secs(20), "the server to start", |c| {
        c.try_get("/health").is_some()
    });
    let run = api.launch(&config);

    let stop = Arc::new(AtomicBool::new(false));
    let workdir = dir.path().join("runner");
    let worker = {
        let stop = stop.clone();
        let mut opts = WorkerOptions::new(&server, "restart-test", &workdir);
        opts.poll = Duration::from_millis(100);
        opts.lease_ms = 30_000;
        opts.checkpoint_every = Some(5);
        std::thread::spawn(move || work(&opts, &Device::Cpu, &stop))
    };
    api.wait_for(Duration::from_secs(60), "training to get going", |c| {
        c.series_steps(run, "loss").len() >= 5
    });
    drop(process);
    // Training goes on while the server is down; its reports pile up in the outbox.
    let outbox = workdir.join("outbox-restart_test");
    let start = std::time::Instant::now();
    while std::fs::read_dir(&outbox).map_or(0, |d| d.count()) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing buffered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let process = start_server_process(&db, port);

    let status = api.wait_final(run, Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    let jobs = worker.join().unwrap().unwrap();
    assert_eq!(status, "done");
    assert_eq!(jobs, 9);
    let train = api.stage(run, "train");
    assert_exact_steps(&api.series_steps(run, "loss"), total_updates(&train));
    assert_eq!(train["attempt"], 1, "{train}");
    assert_eq!(
        std::fs::read_dir(&outbox).unwrap().count(),
        0,
        "outbox flushed"
    );
    drop(process);
}

fn main() {
    if let Ok(spec) = std::env::var(SERVE_ENV) {
        serve(&spec);
        return;
    }
    server_restart_mid_run_the_runner_reconnects_and_the_run_completes();
    println!("test server_restart_mid_run_the_runner_reconnects_and_the_run_completes ... ok");
}
