//! `gpu-runner bench-triplets`: times the triplets stage on a synthetic score file.

use gpu_runner::bench::triplets::{bench_triplets, BenchConfig};

/// Arguments of `gpu-runner bench-triplets`.
#[derive(Debug, clap::Args)]
pub struct BenchTripletsArgs {
    /// Score lines to generate (the real train split has 593,522).
    #[arg(long, default_value_t = 593_522)]
    pub lines: usize,
    /// Passages per query (the dataset has about 30).
    #[arg(long, default_value_t = 30)]
    pub passages_per_query: usize,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Generates the data in a temp dir, runs the stage and prints a timing table.
pub fn run(args: BenchTripletsArgs) -> anyhow::Result<()> {
    let config = BenchConfig {
        n_lines: args.lines,
        passages_per_query: args.passages_per_query,
        seed: args.seed,
    };
    let report = bench_triplets(&config)?;
    println!(
        "synthetic input: {} lines, {} queries, {:.1} MB; {} triplets",
        args.lines,
        report.n_queries,
        report.input_bytes as f64 / 1e6,
        report.n_triplets
    );
    println!("{:<22} {:>10}", "phase", "seconds");
    for (phase, secs) in &report.phases {
        println!("{phase:<22} {secs:>10.3}");
    }
    Ok(())
}
