//! `gpu-runner data-stats`: load-time checks of an MTEB reranking file.

use std::path::PathBuf;

use gpu_runner::data::{read_samples, DataStats};

/// Arguments of `gpu-runner data-stats`.
#[derive(Debug, clap::Args)]
pub struct DataStatsArgs {
    /// MTEB reranking file, `.jsonl` or `.jsonl.gz`.
    #[arg(long)]
    pub data: PathBuf,
}

/// Prints the statistics of the data file as one JSON object on stdout.
pub fn run(args: DataStatsArgs) -> anyhow::Result<()> {
    let samples = read_samples(&args.data)?;
    let stats = DataStats::of(&samples);
    println!("{}", serde_json::to_string(&stats)?);
    Ok(())
}
