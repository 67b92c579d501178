//! `gpu-runner work`: claim and run stage jobs from a Distillery server.
//!
//! SIGTERM (or Ctrl-C) stops the worker gracefully: a training stage checkpoints, its job is
//! released back to the queue, and the process exits 0.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gpu_runner::worker::logs::LogCapture;
use gpu_runner::worker::{work, WorkerOptions};

/// Arguments of `work`.
#[derive(Debug, clap::Args)]
pub struct WorkArgs {
    /// Server base URL, e.g. http://127.0.0.1:8480.
    #[arg(long)]
    pub server: String,
    /// API token (`POST /api/v1/tokens`).
    #[arg(long, env = "DISTILLERY_TOKEN", default_value = "")]
    pub token: String,
    /// Runner name (default: the host's name).
    #[arg(long)]
    pub name: Option<String>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where run directories and the outbox are kept. Runners sharing it resume each other's
    /// checkpoints.
    #[arg(long, default_value = ".distillery/runner")]
    pub workdir: PathBuf,
    /// Lease asked for each stage job, in seconds; heartbeats renew it every third of it.
    #[arg(long, default_value_t = 60.0)]
    pub lease_secs: f64,
    /// Checkpoint training every this many optimizer updates (0: never).
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
    /// Pause between claims when no job is ready, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// A folder whose model directories (with config.json) and .jsonl[.gz] data files, up to
    /// two levels down, the launch form offers as choices. Repeatable.
    #[arg(long)]
    pub catalog: Vec<PathBuf>,
    /// Exit after finishing this many jobs (e.g. one job per batch-scheduler allocation).
    #[arg(long)]
    pub max_jobs: Option<usize>,
}

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_signal: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

/// Sets `stop` once SIGTERM or SIGINT arrives.
fn stop_on_signals(stop: &Arc<AtomicBool>) {
    let handler = on_terminate as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
    let stop = stop.clone();
    std::thread::spawn(move || loop {
        if TERMINATE.load(Ordering::SeqCst) {
            tracing::info!("signal received; stopping after a checkpoint");
            stop.store(true, Ordering::SeqCst);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    });
}

/// Runs the worker loop until the process is stopped.
pub fn run(args: WorkArgs, logs: LogCapture) -> anyhow::Result<()> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let name = args.name.unwrap_or_else(|| {
        std::env::var("HOSTNAME").unwrap_or_else(|_| format!("runner-{}", std::process::id()))
    });
    anyhow::ensure!(
        args.lease_secs > 0.0 && args.lease_secs <= 3600.0,
        "--lease-secs must be in (0, 3600]"
    );
    let mut opts = WorkerOptions::new(&args.server, &name, &args.workdir);
    opts.token = args.token;
    opts.poll = Duration::from_millis(args.poll_ms);
    opts.lease_ms = (args.lease_secs * 1000.0).round().max(1.0) as i64;
    opts.checkpoint_every = (args.checkpoint_every > 0).then_some(args.checkpoint_every);
    opts.logs = Some(logs);
    opts.catalog = args.catalog;
    opts.max_jobs = args.max_jobs;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signals(&stop);
    let done = work(&opts, &device, &stop)?;
    tracing::info!(jobs = done, "worker stopped");
    Ok(())
}
