//! `gpu-runner work`: claim and run stage jobs from a Distillery server.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

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
    /// Where run directories are kept.
    #[arg(long, default_value = ".distillery/runner")]
    pub workdir: PathBuf,
    /// Lease asked for each stage job, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub lease_secs: i64,
}

/// Runs the worker loop until the process is stopped.
pub fn run(args: WorkArgs) -> anyhow::Result<()> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let name = args.name.unwrap_or_else(|| {
        std::env::var("HOSTNAME").unwrap_or_else(|_| format!("runner-{}", std::process::id()))
    });
    let opts = WorkerOptions {
        server: args.server,
        token: args.token,
        name,
        workdir: args.workdir,
        poll: Duration::from_millis(500),
        lease_ms: args.lease_secs * 1000,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let done = work(&opts, &device, &stop)?;
    tracing::info!(jobs = done, "worker stopped");
    Ok(())
}
