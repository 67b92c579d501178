//! `gpu-runner bench`: throughput, MFU and peak memory on random-weight models of real shapes.

use std::path::PathBuf;

use anyhow::Context;
use gpu_runner::bench::{render_table, teacher};
use gpu_runner::io::AtomicFile;
use gpu_runner::teacher::new_model::Preset;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// f32, bf16 or f16.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Teacher shapes.
    #[arg(long, default_value = "qwen3-reranker-8b")]
    pub teacher_preset: Preset,
    /// Queries in the teacher workload.
    #[arg(long, default_value_t = 64)]
    pub queries: usize,
    /// Documents per query.
    #[arg(long, default_value_t = 30)]
    pub docs_per_query: usize,
    /// Tokens of the shared prompt prefix.
    #[arg(long, default_value_t = 61)]
    pub shared_len: usize,
    /// Pairs per teacher batch (comma-separated for several runs).
    #[arg(long, value_delimiter = ',', default_value = "240")]
    pub batch: Vec<usize>,
    /// Use the PyTorch reference's fixed shapes instead of StackOverflow titles: every query
    /// segment QUERY tokens and every pair's rest REST tokens, e.g. 16,20.
    #[arg(long, value_delimiter = ',', value_name = "QUERY,REST")]
    pub fixed_lengths: Option<Vec<usize>>,
    /// Also write the rows as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `bench` and prints the table.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let dtype = gpu_runner::teacher::parse_dtype(&args.dtype)?;
    let fixed_lengths = match args.fixed_lengths.as_deref() {
        None => None,
        Some(&[query, rest]) => Some((query, rest)),
        Some(other) => anyhow::bail!("--fixed-lengths takes QUERY,REST, got {other:?}"),
    };
    let mut rows = Vec::new();
    for &batch in &args.batch {
        let opts = teacher::TeacherBenchOptions {
            preset: args.teacher_preset,
            dtype,
            device: device.clone(),
            queries: args.queries,
            docs_per_query: args.docs_per_query,
            shared_len: args.shared_len,
            batch,
            seed: 0,
            fixed_lengths,
        };
        let report = teacher::run(&opts).context("teacher benchmark")?;
        println!(
            "teacher {} {} batch {batch}{}: mean prompt {:.1} tokens; max |score - no_reuse|: {}",
            args.teacher_preset,
            args.dtype,
            if opts.fixed_lengths.is_some() {
                " (fixed lengths)"
            } else {
                ""
            },
            report.mean_prompt_len,
            report
                .max_diff
                .iter()
                .map(|(m, d)| format!("{m} {d:.3e}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        rows.extend(report.rows);
    }
    print!("{}", render_table(&rows));
    if let Some(path) = &args.json {
        let mut file = AtomicFile::create(path)?;
        serde_json::to_writer_pretty(&mut file, &rows)?;
        file.commit()?;
    }
    Ok(())
}
