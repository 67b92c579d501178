//! `gpu-runner new-teacher-model`: write a random-weight Qwen3-Reranker checkpoint.

use std::path::PathBuf;

use gpu_runner::teacher::new_model::{self, Preset};

/// Arguments of `new-teacher-model`.
#[derive(Debug, clap::Args)]
pub struct NewTeacherModelArgs {
    /// Model architecture; only qwen3-reranker is known.
    #[arg(long, default_value = "qwen3-reranker")]
    pub arch: String,
    /// tiny, qwen3-reranker-0.6b or qwen3-reranker-8b.
    #[arg(long, default_value = "tiny")]
    pub preset: Preset,
    /// The Qwen3 tokenizer.json to copy into the model directory.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `new-teacher-model`.
pub fn run(args: NewTeacherModelArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.arch == "qwen3-reranker",
        "unknown --arch {:?}: use qwen3-reranker",
        args.arch
    );
    new_model::write(args.preset, &args.tokenizer, &args.out, args.seed)?;
    tracing::info!(out = %args.out.display(), preset = %args.preset, "wrote teacher model");
    Ok(())
}
