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
    /// A teacher-score cache directory shared across runs (as a runner's workdir has): pairs
    /// scored by an earlier run with the same teacher and prompt are not scored again.
    #[arg(long)]
    pub score_cache: Option<PathBuf>,
}

/// Runs every stage and prints the report as JSON.
pub fn run(args: PipelineArgs) -> anyhow::Result<()> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let cfg = gpu_runner::pipeline::read_config(&args.config)?;
    let ctx = gpu_runner::observe::StageContext {
        score_cache: args.score_cache.as_deref(),
        ..gpu_runner::observe::StageContext::silent()
    };
    let report = match gpu_runner::pipeline::run_through_with(&cfg, &args.out, &device, None, ctx)?
    {
        gpu_runner::pipeline::Outcome::Done(report) => report,
        gpu_runner::pipeline::Outcome::Stopped(rec) => {
            anyhow::bail!("run stopped after {:?}", rec.stage)
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
