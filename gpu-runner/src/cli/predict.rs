//! `gpu-runner predict`: student logits in the teacher-score format.

use std::path::PathBuf;

use gpu_runner::student::predict::{predict_file, PredictConfig};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `gpu-runner predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Model directory (config.json, model.safetensors or shards, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// MTEB reranking file, `.jsonl` or `.jsonl.gz`.
    #[arg(long)]
    pub data: PathBuf,
    /// Score file to write (one `{query, passage, score}` line per pair, raw logits).
    #[arg(long)]
    pub output: PathBuf,
    /// Pairs per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Token budget per pair (default: what CrossEncoder uses, max_position_embeddings − 2).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Matmul dtype: f32 (the reference's evaluation) or bf16 (on CUDA: the packed,
    /// padding-free path for pairs of at most 128 tokens, 17,000 pairs/s on an H100).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `predict`.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let n = gpu_runner::student::predict::count_pairs(&args.data)?;
        let bar = ProgressBar::new(n as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} pairs, ETA {eta_precise}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let cfg = PredictConfig {
        batch_size: args.batch_size,
        max_length: args.max_length,
        dtype: gpu_runner::teacher::parse_dtype(&args.dtype)?,
    };
    let n = predict_file(&args.model, &args.data, &args.output, &cfg, &device, |k| {
        bar.inc(k as u64)
    })?;
    bar.finish();
    tracing::info!("wrote {n} scores to {}", args.output.display());
    Ok(())
}
