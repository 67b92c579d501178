//! `gpu-runner demo-data`: the synthetic demo dataset (train and held-out test splits).

use std::path::PathBuf;

use gpu_runner::demo::{write_demo_data, DemoOptions};

/// Arguments of `demo-data`.
#[derive(Debug, clap::Args)]
pub struct DemoDataArgs {
    /// Directory to write `train.jsonl` and `test.jsonl` into.
    #[arg(long)]
    pub out: PathBuf,
    /// Queries of the training split.
    #[arg(long, default_value_t = DemoOptions::default().train_queries)]
    pub train_queries: usize,
    /// Queries of the held-out test split.
    #[arg(long, default_value_t = DemoOptions::default().test_queries)]
    pub test_queries: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = DemoOptions::default().seed)]
    pub seed: u64,
    /// The shape of StackOverflowDupQuestions (30 candidates per query, title-length texts)
    /// instead of the demo's (8 short candidates), for benchmarks.
    #[arg(long)]
    pub stackoverflow_shape: bool,
}

/// Runs `demo-data`.
pub fn run(args: DemoDataArgs) -> anyhow::Result<()> {
    let base = if args.stackoverflow_shape {
        DemoOptions::stackoverflow_shaped(args.train_queries, args.test_queries)
    } else {
        DemoOptions::default()
    };
    let opts = DemoOptions {
        train_queries: args.train_queries,
        test_queries: args.test_queries,
        seed: args.seed,
        ..base
    };
    let (train, test) = write_demo_data(&args.out, &opts)?;
    tracing::info!(train = %train.display(), test = %test.display(), "wrote synthetic demo data");
    Ok(())
}
