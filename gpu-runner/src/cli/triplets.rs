//! `gpu-runner triplets`: margin triplets from a teacher-score file (spec §1.2).

use std::path::PathBuf;

use gpu_runner::triplets::{run_triplets, Sampling, TripletOptions};

/// Arguments of `gpu-runner triplets`.
#[derive(Debug, clap::Args)]
pub struct TripletsArgs {
    /// Teacher-score file: `{"query", "passage", "score"}` lines (`.jsonl` or `.jsonl.gz`).
    #[arg(long)]
    pub input: PathBuf,
    /// Output file of `{"query", "positive", "negative", "score"}` lines, written atomically.
    #[arg(long)]
    pub output: PathBuf,
    /// Top-scored passages of each query used as positives.
    #[arg(long, default_value_t = 8)]
    pub top_k: usize,
    /// Negatives per positive, before dropping identical passages and zero margins.
    #[arg(long, default_value_t = 4)]
    pub num_negatives: usize,
    /// How negatives are chosen below each positive; `hard` is the reference.
    #[arg(long, value_enum, default_value_t = Sampling::Hard)]
    pub sampling: Sampling,
    /// Seed of the `random` and `mixed` draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip malformed lines with a warning, as the reference script does, instead of failing.
    #[arg(long)]
    pub lenient: bool,
}

/// Runs the stage and prints its statistics to stderr.
pub fn run(args: TripletsArgs) -> anyhow::Result<()> {
    let opts = TripletOptions {
        top_k: args.top_k,
        num_negatives: args.num_negatives,
        sampling: args.sampling,
        seed: args.seed,
    };
    let report = run_triplets(&args.input, &args.output, &opts, args.lenient)?;
    let r = &report.read;
    let b = &report.build;
    eprintln!(
        "read {} records ({} lines skipped) in {} query groups; {} groups with < 2 records skipped",
        r.records, r.skipped_lines, r.groups, b.small_groups
    );
    eprintln!(
        "wrote {} triplets from {} groups to {}; dropped {} identical passages and {} zero margins",
        b.triplets,
        b.groups_used,
        args.output.display(),
        b.identical_passages,
        b.zero_margins
    );
    Ok(())
}
