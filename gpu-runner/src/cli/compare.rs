//! `gpu-runner compare`: paired before/after comparison of two score files on the same data.

use std::path::PathBuf;

use gpu_runner::compare::{compare, CompareOptions, Comparison};
use gpu_runner::data::read_samples;
use gpu_runner::metrics::evaluate_score_file;

use super::metrics::MetricArgs;

/// Arguments of `gpu-runner compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// MTEB reranking data (`.jsonl` or `.jsonl.gz`).
    #[arg(long)]
    pub data: PathBuf,
    /// Score file of the baseline (e.g. the base student).
    #[arg(long)]
    pub before: PathBuf,
    /// Score file of the candidate (e.g. the distilled student).
    #[arg(long)]
    pub after: PathBuf,
    #[command(flatten)]
    pub metric: MetricArgs,
    /// Bootstrap resamples and randomization-test permutations.
    #[arg(long, default_value_t = 10_000)]
    pub resamples: usize,
    /// Seed of the bootstrap and the randomization test.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Evaluates both files and prints the comparison.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let opts = args.metric.options();
    let samples = read_samples(&args.data)?;
    let before = evaluate_score_file(&samples, &args.before, &opts)?;
    let after = evaluate_score_file(&samples, &args.after, &opts)?;
    let comparison = compare(
        &before,
        &after,
        &CompareOptions {
            resamples: args.resamples,
            seed: args.seed,
            at_k: opts.at_k,
        },
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&comparison)?);
    } else {
        print!("{}", table(&comparison));
    }
    Ok(())
}

/// The human-readable table.
pub fn table(c: &Comparison) -> String {
    let mut out = format!(
        "{:<9} {:>9} {:>9} {:>10} {:>9}  {:<22} {:>8}\n",
        "metric", "before", "after", "change", "relative", "95% CI (bootstrap)", "p"
    );
    for m in &c.metrics {
        let relative = m
            .relative_pct
            .map_or_else(|| "n/a".to_string(), |r| format!("{r:+.2}%"));
        let ci = format!("[{:+.4}, {:+.4}]", m.ci_low, m.ci_high);
        out += &format!(
            "{:<9} {:>9.6} {:>9.6} {:>+10.6} {:>9}  {:<22} {:>8.4}\n",
            m.metric, m.before, m.after, m.absolute, relative, ci, m.p_value
        );
    }
    out += &format!(
        "{} paired queries, {} resamples, seed {}; queries with a relevant/irrelevant tie: {} before, {} after\n",
        c.queries, c.resamples, c.seed, c.relevant_ties[0], c.relevant_ties[1]
    );
    out
}
