//! `gpu-runner train`: MarginMSE distillation of the student on teacher triplets.

use std::path::PathBuf;

use clap::Args;
use gpu_runner::train::{train, Forward, TrainConfig};

/// Arguments of `train`; defaults are the reference command's.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model directory to start from (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Training triplets (jsonl or jsonl.gz, `{query, positive, negative, score}`).
    #[arg(long)]
    pub train: PathBuf,
    /// Output directory: final model, checkpoints and train_log.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// Evaluation triplets, scored every --eval-steps updates.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Triplets per micro-batch.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Micro-batches per optimizer update.
    #[arg(long, default_value_t = 32)]
    pub grad_accum: usize,
    /// Triplets per forward/backward pass when not --batch-size (must divide batch-size ×
    /// grad-accum); the update arithmetic is the same.
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Sort each update's triplets by length before cutting them into passes.
    #[arg(long)]
    pub sort_by_length: bool,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f64,
    /// Fraction of updates spent warming up.
    #[arg(long, default_value_t = 0.05)]
    pub warmup_ratio: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 disables).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Token budget of a pair, special tokens included.
    #[arg(long, default_value_t = 512)]
    pub max_length: usize,
    /// Seed of shuffle and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Evaluate every N updates.
    #[arg(long)]
    pub eval_steps: Option<usize>,
    /// Save a checkpoint every N updates.
    #[arg(long)]
    pub save_steps: Option<usize>,
    /// bf16 compute with f32 master weights (CUDA).
    #[arg(long)]
    pub bf16: bool,
    /// Continue from the latest checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Drop the last partial micro-batch, as the reference's torchrun does.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub drop_last: bool,
    /// Train without dropout.
    #[arg(long)]
    pub no_dropout: bool,
    /// `separate`: (q,pos) and (q,neg) in two forward passes, each padded on its own (the
    /// reference). `joint`: all 2B pairs in one pass padded together; numerically equivalent
    /// up to float rounding (padding is masked) and faster on GPU. `auto`: joint on CUDA,
    /// separate on CPU.
    #[arg(long, value_enum, default_value_t = Forward::Auto)]
    pub forward: Forward,
    /// Stop after this update, with a checkpoint (for interruption tests).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let cfg = TrainConfig {
        eval: args.eval,
        epochs: args.epochs,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        micro_batch: args.micro_batch,
        sort_by_length: args.sort_by_length,
        lr: args.lr,
        warmup_ratio: args.warmup_ratio,
        weight_decay: args.weight_decay,
        max_grad_norm: args.max_grad_norm,
        max_length: args.max_length,
        seed: args.seed,
        eval_steps: args.eval_steps,
        save_steps: args.save_steps,
        bf16: args.bf16,
        resume: args.resume,
        drop_last: args.drop_last,
        dropout: !args.no_dropout,
        forward: args.forward,
        stop_after: args.stop_after,
        progress: !args.quiet,
        ..TrainConfig::new(args.model, args.train, args.out)
    };
    let summary = train(&cfg, &device)?;
    tracing::info!(
        "done {} of {} updates, last loss {:.4}",
        summary.steps_done,
        summary.total_steps,
        summary.last_loss
    );
    Ok(())
}
