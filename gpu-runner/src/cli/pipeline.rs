//! `gpu-runner pipeline`: a whole run from a TOML `RunConfig`, headless.

use std::path::PathBuf;

/// Arguments of `pipeline`.
#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// Run configuration (the fields of the dashboard's run form) as TOML.
    #[arg(long)]
    pub config: PathBuf,
    /// Run directory: stage outputs, manifest.json and report.json.
    #[arg(long)]
    pub out: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs every stage and prints the report as JSON.
pub fn run(args: PipelineArgs) -> anyhow::Result<()> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let cfg = gpu_runner::pipeline::read_config(&args.config)?;
    let report = gpu_runner::pipeline::run(&cfg, &args.out, &device)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
