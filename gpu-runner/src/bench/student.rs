//! Student benchmarks on a random-weight `bge-reranker-v2-m3`-shaped model made on the device:
//!
//! * `student-train`: MarginMSE training steps (f32 master weights, bf16 compute, dropout on,
//!   global-norm clipping, torch AdamW) of `T` triplets, i.e. `2T` pairs of 32–48 tokens, through
//!   the trainer's own functions ([`crate::train::margin_mse`] or, in joint mode (the default on CUDA),
//!   [`crate::train::joint_margin_mse`], and [`AdamW::clip_and_step`]);
//! * `student-infer`: bf16 scoring of batches of pairs of 32–48 tokens (dense weights cast to
//!   bf16 once, as `predict` does with `--dtype bf16`).
//!
//! MFU counts the model FLOPs of real (unpadded) tokens: forward `2·(4h² + 2h·i)` per token and
//! layer plus `4·h·L` for attention, training three times that.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};

use super::{BenchRow, PEAK_BF16_FLOPS};
use crate::cuda_mem::MemoryPool;
use crate::student::encode::{pad_batch, EncodedBatch};
use crate::student::ops::{DropoutRng, Mode};
use crate::student::xlm_roberta::{Config, XLMRobertaForSequenceClassification};
use crate::train::adamw::{AdamW, AdamWParams};
use crate::train::{add_gradients, joint_margin_mse, margin_mse, Grads};
use crate::Result;

/// Shortest and longest pair in tokens (specials included), as in the PyTorch reference.
const PAIR_TOKENS: (usize, usize) = (32, 48);
/// The reference's learning rate, weight decay and clipping.
const LR: f64 = 2e-5;
const WEIGHT_DECAY: f64 = 0.01;
const MAX_GRAD_NORM: f64 = 1.0;

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct StudentBenchOptions {
    /// The model shape (`bge-reranker-v2-m3` for the real benchmark).
    pub config: Config,
    pub device: Device,
    /// Triplets per training step (one row each).
    pub triplets: Vec<usize>,
    /// Pairs per inference batch (one row each).
    pub batches: Vec<usize>,
    /// Timed steps (training) or batches (inference) per row.
    pub steps: usize,
    /// Label of the rows' mode column (e.g. `fused` or `composed`).
    pub label: String,
    /// Training runs positives and negatives in one padded forward pass of `2T` pairs (as the
    /// PyTorch reference benchmark does, and `gpu-runner train --forward joint`) instead of the
    /// trainer's default two passes (spec §B.1).
    pub joint: bool,
    pub seed: u64,
}

/// HF-style random weights on the device: normal(0, `initializer_range`) matrices, unit
/// LayerNorm weights, zero biases.
fn random_weights(cfg: &Config, device: &Device) -> Result<Vec<(String, Tensor)>> {
    cfg.expected_tensors()
        .into_iter()
        .map(|(name, shape)| {
            let t = if name.contains("LayerNorm.weight") {
                Tensor::ones(shape.as_slice(), DType::F32, device)?
            } else if name.ends_with(".bias") {
                Tensor::zeros(shape.as_slice(), DType::F32, device)?
            } else {
                Tensor::randn(0f32, cfg.initializer_range as f32, shape.as_slice(), device)?
            };
            Ok((name, t))
        })
        .collect()
}

/// `n` pairs of random ids with lengths in [`PAIR_TOKENS`], padded to the longest.
fn random_batch(
    rng: &mut impl Rng,
    cfg: &Config,
    n: usize,
    device: &Device,
) -> Result<EncodedBatch> {
    pad_batch(&random_rows(rng, cfg, n), cfg.pad_token_id, device)
}

fn random_rows(rng: &mut impl Rng, cfg: &Config, n: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|_| {
            let len = rng.random_range(PAIR_TOKENS.0..=PAIR_TOKENS.1);
            let mut ids: Vec<u32> = (0..len)
                .map(|_| rng.random_range(5..cfg.vocab_size as u32 - 2))
                .collect();
            ids[0] = cfg.bos_token_id;
            ids[len - 1] = cfg.eos_token_id;
            ids
        })
        .collect()
}

/// Forward FLOPs of one sequence of `len` real tokens.
fn forward_flops(cfg: &Config, len: usize) -> f64 {
    let (h, i) = (cfg.hidden_size as f64, cfg.intermediate_size as f64);
    let per_token = 2.0 * (4.0 * h * h + 2.0 * h * i) + 4.0 * h * len as f64;
    cfg.num_hidden_layers as f64 * per_token * len as f64
}

fn batch_flops(cfg: &Config, batch: &EncodedBatch) -> f64 {
    batch.lengths.iter().map(|&n| forward_flops(cfg, n)).sum()
}

fn row(
    opts: &StudentBenchOptions,
    workload: &str,
    batch: usize,
    items: usize,
    seconds: f64,
    flops: f64,
    peak: Option<u64>,
) -> BenchRow {
    BenchRow {
        workload: workload.into(),
        mode: opts.label.clone(),
        batch,
        items,
        seconds,
        items_per_s: items as f64 / seconds,
        mfu: flops / seconds / PEAK_BF16_FLOPS,
        peak_gib: peak.map(|b| b as f64 / (1u64 << 30) as f64),
    }
}

/// What a training row's timed steps did, for the notes: loss and gradient norm at the first
/// and last timed step, and the mean host time per step of each phase (forward enqueue,
/// backward enqueue, gradient norm + optimizer incl. its one sync, final loss read).
#[derive(Debug, Clone, Default)]
pub struct TrainTrace {
    pub loss: (f32, f32),
    pub grad_norm: (f32, f32),
    pub ms: [f64; 4],
}

/// Training rows, one per entry of `opts.triplets`, with their traces.
pub fn train(opts: &StudentBenchOptions) -> Result<(Vec<BenchRow>, Vec<TrainTrace>)> {
    let pool = MemoryPool::of(&opts.device)?;
    let cfg = &opts.config;
    let vars: Vec<(String, Var)> = random_weights(cfg, &opts.device)?
        .into_iter()
        .map(|(name, t)| Ok((name, Var::from_tensor(&t)?)))
        .collect::<Result<_>>()?;
    let tensors = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &opts.device);
    let compute = if opts.device.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    };
    let model = XLMRobertaForSequenceClassification::load(vb, cfg, compute)?;
    let params = AdamWParams {
        weight_decay: WEIGHT_DECAY,
        ..AdamWParams::default()
    };
    let mut optimizer = AdamW::new(vars, params)?;
    let dropout = DropoutRng::new(opts.seed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let (mut rows, mut traces) = (Vec::new(), Vec::new());
    for &t in &opts.triplets {
        let batches: Vec<(EncodedBatch, EncodedBatch, EncodedBatch, Tensor)> = (0..4)
            .map(|_| {
                let (pos, neg) = (random_rows(&mut rng, cfg, t), random_rows(&mut rng, cfg, t));
                let joint = [pos.clone(), neg.clone()].concat();
                let pad = |rows: &[Vec<u32>]| pad_batch(rows, cfg.pad_token_id, &opts.device);
                let labels = (Tensor::randn(0f32, 1.0, t, &opts.device)? * 2.0)?;
                Ok((pad(&pos)?, pad(&neg)?, pad(&joint)?, labels))
            })
            .collect::<Result<_>>()?;
        let mut ms = [0f64; 4];
        let mut step = |k: usize, ms: &mut [f64; 4]| -> Result<(f32, f32, f64)> {
            let (pos, neg, joint, labels) = &batches[k % batches.len()];
            let mut clock = Instant::now();
            let mut lap = |slot: usize, ms: &mut [f64; 4]| {
                ms[slot] += clock.elapsed().as_secs_f64() * 1e3;
                clock = Instant::now();
            };
            let mode = Mode::Train(Some(&dropout));
            let loss = if opts.joint {
                joint_margin_mse(&model, joint, labels, mode)?
            } else {
                margin_mse(&model, pos, neg, labels, mode)?
            };
            lap(0, ms);
            let mut grads: Grads = Vec::new();
            add_gradients(&loss, optimizer.vars(), &mut grads)?;
            lap(1, ms);
            let norm = optimizer.clip_and_step(&mut grads, MAX_GRAD_NORM, LR)?;
            lap(2, ms);
            let loss = loss.to_scalar::<f32>()?;
            lap(3, ms);
            let flops = 3.0 * (batch_flops(cfg, pos) + batch_flops(cfg, neg));
            Ok((loss, norm, flops))
        };
        for k in 0..3 {
            step(k, &mut ms)?;
        }
        ms = [0.0; 4];
        pool.reset_peak()?;
        let start = Instant::now();
        let (mut flops, mut trace) = (0.0, TrainTrace::default());
        for k in 0..opts.steps {
            let (loss, norm, f) = step(k, &mut ms)?;
            flops += f;
            if k == 0 {
                (trace.loss.0, trace.grad_norm.0) = (loss, norm);
            }
            (trace.loss.1, trace.grad_norm.1) = (loss, norm);
        }
        let seconds = start.elapsed().as_secs_f64();
        trace.ms = ms.map(|m| m / opts.steps.max(1) as f64);
        tracing::info!(triplets = t, seconds, ?trace, "student training bench done");
        rows.push(row(
            opts,
            "student-train",
            t,
            t * opts.steps,
            seconds,
            flops,
            pool.peak_bytes()?,
        ));
        traces.push(trace);
    }
    Ok((rows, traces))
}

/// Inference rows, one per entry of `opts.batches`.
pub fn infer(opts: &StudentBenchOptions) -> Result<Vec<BenchRow>> {
    let pool = MemoryPool::of(&opts.device)?;
    let cfg = &opts.config;
    let tensors = random_weights(cfg, &opts.device)?.into_iter().collect();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &opts.device);
    let compute = if opts.device.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    };
    let model = XLMRobertaForSequenceClassification::load_inference(vb, cfg, compute)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let mut rows = Vec::new();
    for &b in &opts.batches {
        let batches: Vec<EncodedBatch> = (0..4)
            .map(|_| random_batch(&mut rng, cfg, b, &opts.device))
            .collect::<Result<_>>()?;
        let run = |k: usize| -> Result<f64> {
            let batch = &batches[k % batches.len()];
            let logits = model.forward(
                &batch.input_ids,
                &batch.position_ids,
                &batch.attention_mask,
                Mode::Eval,
            )?;
            let scores = logits.to_vec1::<f32>()?;
            if scores.iter().any(|s| !s.is_finite()) {
                return Err(crate::Error::Other(
                    "student inference produced a non-finite logit".into(),
                ));
            }
            Ok(batch_flops(cfg, batch))
        };
        for k in 0..2 {
            run(k)?;
        }
        pool.reset_peak()?;
        let start = Instant::now();
        let mut flops = 0.0;
        for k in 0..opts.steps {
            flops += run(k)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        tracing::info!(batch = b, seconds, "student inference bench done");
        rows.push(row(
            opts,
            "student-infer",
            b,
            b * opts.steps,
            seconds,
            flops,
            pool.peak_bytes()?,
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_options() -> StudentBenchOptions {
        StudentBenchOptions {
            config: Config::tiny(300),
            device: Device::Cpu,
            triplets: vec![2],
            batches: vec![3],
            steps: 2,
            label: "cpu".into(),
            joint: false,
            seed: 1,
        }
    }

    #[test]
    fn training_and_inference_rows_on_the_tiny_model() {
        let opts = tiny_options();
        let (rows, losses) = train(&opts).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].items, 4);
        assert!(rows[0].mfu > 0.0 && rows[0].items_per_s > 0.0);
        assert!(losses[0].loss.0.is_finite() && losses[0].grad_norm.1 > 0.0);
        let joint = train(&StudentBenchOptions {
            joint: true,
            ..opts.clone()
        })
        .unwrap();
        assert!(joint.1[0].loss.0.is_finite());
        let rows = infer(&opts).unwrap();
        assert_eq!(
            (rows[0].workload.as_str(), rows[0].items),
            ("student-infer", 6)
        );
    }

    #[test]
    fn flops_grow_with_length() {
        let cfg = Config::bge_reranker_v2_m3();
        let (a, b) = (forward_flops(&cfg, 32), forward_flops(&cfg, 48));
        assert!(b > 1.5 * a && b < 1.6 * a, "{a} {b}");
    }
}
