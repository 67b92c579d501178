//! `cargo xtask demo`: install, build, start the dashboard on embedded SQLite, print the URL.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::util::{self, step};
use crate::{app, http};

struct Options {
    port: u16,
    /// Exit once the demo is up instead of serving until Ctrl-C (used by tests).
    no_wait: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        port: 8480,
        no_wait: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                o.port = it
                    .next()
                    .context("--port needs a value")?
                    .parse()
                    .context("--port must be a number")?
            }
            "--no-wait" => o.no_wait = true,
            other => bail!("unknown demo option {other:?} (known: --port N, --no-wait)"),
        }
    }
    Ok(o)
}

/// Kills the child when dropped, so Ctrl-C or an error never leaves a server behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = parse(args)?;
    let started = Instant::now();
    app::build()?;
    step("building the server and the gpu-runner");
    util::exec(util::cargo().args(["build", "-p", "distillery-server", "-p", "gpu-runner"]))?;

    let data_dir = std::path::Path::new(".distillery/demo");
    std::fs::create_dir_all(data_dir)?;
    let url = format!("http://127.0.0.1:{}", opts.port);
    step(&format!(
        "starting the dashboard at {url} (SQLite in {})",
        data_dir.display()
    ));
    let server = Command::new(util::target_dir().join("debug/distillery-server"))
        .args(["--bind", &format!("127.0.0.1:{}", opts.port)])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--dist", app::DIST])
        .spawn()
        .context("starting distillery-server")?;
    let mut server = Guard(server);
    wait_healthy(&opts, &mut server)?;
    eprintln!(
        "\nThe dashboard is up in {:.0} s: {url}",
        started.elapsed().as_secs_f64()
    );

    let root = util::workspace_root()?;
    let demo = root.join(data_dir);
    prepare_inputs(&demo)?;
    step("starting a local CPU gpu-runner");
    let worker = Command::new(util::target_dir().join("debug/gpu-runner"))
        .args([
            "work", "--server", &url, "--name", "demo-cpu", "--device", "cpu",
        ])
        .arg("--workdir")
        .arg(demo.join("runner"))
        // The demo's student and data files become choices on the New run form.
        .arg("--catalog")
        .arg(&demo)
        .spawn()
        .context("starting gpu-runner work")?;
    let _worker = Guard(worker);

    let run_started = Instant::now();
    let run_id = launch_demo_run(opts.port, &demo)?;
    eprintln!("launched run {run_id}: watch it live at {url}/runs/{run_id}");
    let status = wait_for_run(opts.port, run_id)?;
    eprintln!(
        "run {run_id} finished as {status} in {:.0} s",
        run_started.elapsed().as_secs_f64()
    );
    print_metrics(opts.port, run_id)?;
    if status != "done" {
        bail!("the demo run ended as {status}: see {url}/runs/{run_id}");
    }
    eprintln!("\nDistillery is up: open {url}/runs/{run_id}\n");
    if opts.no_wait {
        return Ok(());
    }
    eprintln!("Press Ctrl-C to stop.");
    let status = server.0.wait()?;
    bail!("the server exited: {status}")
}

/// The demo's inputs: a generated dataset (BM25 teacher, synthetic queries) and a tiny student.
fn prepare_inputs(demo: &std::path::Path) -> anyhow::Result<()> {
    let runner = util::target_dir().join("debug/gpu-runner");
    if !demo.join("data/test.jsonl").is_file() {
        step("generating the synthetic demo dataset");
        util::exec(
            Command::new(&runner)
                .args(["demo-data", "--out"])
                .arg(demo.join("data")),
        )?;
    }
    if !demo.join("student/config.json").is_file() {
        step("writing the tiny random-weight student");
        util::exec(
            Command::new(&runner)
                .args([
                    "new-model",
                    "--arch",
                    "xlm-roberta",
                    "--preset",
                    "tiny",
                    "--seed",
                    "1",
                    "--out",
                ])
                .arg(demo.join("student")),
        )?;
    }
    Ok(())
}

fn launch_demo_run(port: u16, demo: &std::path::Path) -> anyhow::Result<i64> {
    let path = |p: &str| demo.join(p).display().to_string();
    let body = serde_json::json!({
        "name": "demo: BM25 teacher, synthetic data, tiny student",
        "tags": ["demo"],
        "config": {
            "teacher_kind": "bm25",
            "student": path("student"),
            "train_data": path("data/train.jsonl"),
            "test_data": path("data/test.jsonl"),
            "epochs": 3,
            "batch_size": 32,
            "grad_accum": 1,
            "lr": 2e-3,
            "warmup_ratio": 0.1,
            "max_length": 64,
            "bf16": false
        }
    });
    let run = http::json(port, "POST", "/api/v1/runs", Some(&body))?;
    run["id"]
        .as_i64()
        .context("the server returned a run without an id")
}

fn wait_for_run(port: u16, run_id: i64) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = String::new();
    while Instant::now() < deadline {
        let run = http::json(port, "GET", &format!("/api/v1/runs/{run_id}"), None)?;
        let status = run["status"].as_str().unwrap_or("unknown").to_string();
        if status != last {
            eprintln!("  run {run_id}: {status}");
            last = status.clone();
        }
        if matches!(status.as_str(), "done" | "failed" | "cancelled") {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("the demo run did not finish within 10 minutes")
}

fn print_metrics(port: u16, run_id: i64) -> anyhow::Result<()> {
    let rows = http::json(port, "GET", &format!("/api/v1/runs/{run_id}/metrics"), None)?;
    let Some(rows) = rows.as_array() else {
        return Ok(());
    };
    eprintln!("\nHeld-out demo test split (student before -> after; BM25 teacher = upper bound):");
    for r in rows {
        let f = |k: &str| {
            r[k].as_f64()
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "-".into())
        };
        eprintln!(
            "  {:<10} {} -> {}   (change {})   teacher {}",
            r["metric"].as_str().unwrap_or("?"),
            f("before"),
            f("after"),
            f("abs_change"),
            f("teacher")
        );
    }
    Ok(())
}

fn wait_healthy(opts: &Options, server: &mut Guard) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = server.0.try_wait()? {
            bail!("the server exited during start-up: {status}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", opts.port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "the server did not start listening on port {} within 30 s",
        opts.port
    )
}
