//! MarginMSE distillation of the student (spec §B.1, §C): the reference trainer's arithmetic
//! (loss per micro-batch divided by the accumulation count, global-norm clipping, torch AdamW,
//! the HF linear schedule), a seeded shuffle, jsonl logs, checkpoints and exact resume.
//!
//! Differences from the reference, by design: the shuffle is our own seeded Fisher–Yates (not
//! PyTorch's `randperm`), and dropout masks come from our own seeded generators.

pub mod adamw;
pub mod checkpoint;
pub mod data;
mod run;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::student::encode::{EncodedBatch, PairEncoder};
use crate::student::new_model::{write_json, SIGMOID_ACTIVATION};
use crate::student::ops::{DropoutRng, Mode};
use crate::student::xlm_roberta::{Config, XLMRobertaForSequenceClassification};
use crate::student::{
    load_config, load_weights, save_weights, usable_max_length, CONFIG_FILE, TOKENIZER_FILE,
    WEIGHTS_FILE,
};
use crate::{Error, Result};
use adamw::{AdamW, AdamWParams};
use data::Triplet;

pub use run::{train, train_observed, TrainHooks, TrainSummary};

/// How the positive and negative pairs of a micro-batch go through the student.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Forward {
    /// `joint` on CUDA, where one pass of twice the pairs is the speed lever (the PyTorch
    /// reference benchmark runs its training step that way too), `separate` elsewhere.
    #[default]
    Auto,
    /// Two forward passes, (q, pos) and (q, neg), each padded to its own longest pair, as the
    /// reference trainer does (spec §B.1).
    Separate,
    /// One forward pass of the `2B` pairs (positives, then negatives) padded to the longest of
    /// all. Padding is masked, so the loss and gradients equal `separate`'s up to float
    /// rounding; faster on GPU (bench/NOTES.md run 3: 1.65× at 16 triplets). Parameters whose
    /// exact gradient is zero (the classifier's output bias, attention key biases) get rounding
    /// noise as gradient, which AdamW turns into steps of up to `lr`; the output bias, exactly
    /// still in `separate`, therefore drifts here (no effect on margins or rankings).
    Joint,
}

impl Forward {
    /// `Separate` or `Joint`, resolving `Auto` for `device`.
    pub fn resolve(self, device: &Device) -> Forward {
        match self {
            Forward::Auto if device.is_cuda() => Forward::Joint,
            Forward::Auto => Forward::Separate,
            other => other,
        }
    }
}

/// Settings of `gpu-runner train`; the defaults are the reference command's (§1.3).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Directory of the model to start from (HF layout).
    pub model: PathBuf,
    /// Training triplets (jsonl).
    pub train: PathBuf,
    /// Optional evaluation triplets.
    pub eval: Option<PathBuf>,
    /// Output directory: final model, checkpoints and `train_log.jsonl`.
    pub out: PathBuf,
    /// Epochs.
    pub epochs: usize,
    /// Triplets per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer update.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warmup fraction of the updates.
    pub warmup_ratio: f64,
    /// AdamW weight decay (not applied to biases and LayerNorm).
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 disables it.
    pub max_grad_norm: f64,
    /// Token budget of a pair, special tokens included.
    pub max_length: usize,
    /// Seed of the shuffle and of dropout.
    pub seed: u64,
    /// Evaluate every this many updates (needs `eval`).
    pub eval_steps: Option<usize>,
    /// Save a checkpoint every this many updates.
    pub save_steps: Option<usize>,
    /// bf16 compute with f32 master weights (CUDA only).
    pub bf16: bool,
    /// Continue from the latest complete checkpoint in `out`.
    pub resume: bool,
    /// Drop the last partial micro-batch, as `torchrun` forces (§C.3).
    pub drop_last: bool,
    /// Triplets per forward/backward pass, when not `batch_size`: each update's
    /// `batch_size × grad_accum` triplets go through in passes of this many, with the same
    /// update arithmetic (every triplet weighs `1 / (batch_size × grad_accum)`).
    pub micro_batch: Option<usize>,
    /// Sort each update's triplets by length before cutting them into passes (less padding;
    /// the update's gradient is the same sum).
    pub sort_by_length: bool,
    /// Dropout in training (the reference trains with it).
    pub dropout: bool,
    /// Positives and negatives in two forward passes (the reference) or one joint pass.
    pub forward: Forward,
    /// Stop (with a checkpoint) after this update, as if interrupted.
    pub stop_after: Option<usize>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl TrainConfig {
    /// The reference settings for the given paths.
    /// The hyper-parameters come from [`distillery_api::RunConfig::default`], where the reference
    /// values are written once.
    pub fn new(model: PathBuf, train: PathBuf, out: PathBuf) -> Self {
        let reference = distillery_api::RunConfig::default();
        TrainConfig {
            model,
            train,
            eval: None,
            out,
            epochs: reference.epochs as usize,
            batch_size: reference.batch_size as usize,
            grad_accum: reference.grad_accum as usize,
            lr: reference.lr,
            warmup_ratio: reference.warmup_ratio,
            weight_decay: reference.weight_decay,
            max_grad_norm: reference.max_grad_norm,
            max_length: reference.max_length as usize,
            seed: reference.seed,
            eval_steps: None,
            save_steps: None,
            bf16: false,
            resume: false,
            drop_last: true,
            micro_batch: None,
            sort_by_length: false,
            dropout: true,
            forward: Forward::Auto,
            stop_after: None,
            progress: true,
        }
    }
}

/// Gradients accumulated over the micro-batches of one update, aligned with the variables.
pub type Grads = Vec<Option<Tensor>>;

/// MarginMSE `mean((s(q,pos) − s(q,neg) − label)²)` of encoded positive and negative pairs,
/// each batch in its own padded forward pass as in the reference.
pub fn margin_mse(
    model: &XLMRobertaForSequenceClassification,
    pos: &EncodedBatch,
    neg: &EncodedBatch,
    labels: &Tensor,
    mode: Mode,
) -> Result<Tensor> {
    let logits =
        |b: &EncodedBatch| model.forward(&b.input_ids, &b.position_ids, &b.attention_mask, mode);
    let margin = (logits(pos)? - logits(neg)?)?;
    Ok((margin - labels)?.sqr()?.mean_all()?)
}

/// MarginMSE with positives and negatives in one forward pass: `joint` holds the `T`
/// positive pairs, then the `T` negative pairs, padded together.
pub fn joint_margin_mse(
    model: &XLMRobertaForSequenceClassification,
    joint: &EncodedBatch,
    labels: &Tensor,
    mode: Mode,
) -> Result<Tensor> {
    let t = labels.elem_count();
    if joint.lengths.len() != 2 * t {
        return Err(Error::Other(format!(
            "joint batch has {} pairs for {t} labels (expected {})",
            joint.lengths.len(),
            2 * t
        )));
    }
    let logits = model.forward(
        &joint.input_ids,
        &joint.position_ids,
        &joint.attention_mask,
        mode,
    )?;
    let margin = (logits.narrow(0, 0, t)? - logits.narrow(0, t, t)?)?;
    Ok((margin - labels)?.sqr()?.mean_all()?)
}

/// Back-propagates `loss` and adds each variable's gradient into `grads` (aligned with `vars`).
/// A variable's first gradient of an update is kept as backward made it (a tensor of its own:
/// candle's gradient store never shares one between variables); later ones are added into it
/// in place, on CUDA in one multi-tensor launch.
pub fn add_gradients(loss: &Tensor, vars: &[(String, Var)], grads: &mut Grads) -> Result<()> {
    let store = loss.backward()?;
    grads.resize(vars.len(), None);
    let mut pending: Vec<(usize, Tensor)> = Vec::new();
    for (i, (slot, (_, var))) in grads.iter_mut().zip(vars).enumerate() {
        if let Some(g) = store.get(var.as_tensor()) {
            match slot {
                None => *slot = Some(g.clone()),
                Some(_) => pending.push((i, g.clone())),
            }
        }
    }
    drop(store);
    add_into(grads, pending)
}

/// `grads[i] += g` for every `(i, g)`.
fn add_into(grads: &mut Grads, pending: Vec<(usize, Tensor)>) -> Result<()> {
    #[cfg(feature = "cuda")]
    {
        let in_place = pending.iter().all(|(i, g)| {
            grads[*i].as_ref().is_some_and(|acc| {
                crate::kernels::applies(acc)
                    && acc.dtype() == DType::F32
                    && acc.is_contiguous()
                    && acc.shape() == g.shape()
            })
        });
        if in_place && !pending.is_empty() {
            let pairs: Vec<(&Tensor, &Tensor)> = pending
                .iter()
                .filter_map(|(i, g)| grads[*i].as_ref().map(|acc| (acc, g)))
                .collect();
            return Ok(crate::kernels::adamw::add_into(&pairs)?);
        }
    }
    for (i, g) in pending {
        if let Some(acc) = grads[i].take() {
            grads[i] = Some((acc + g)?);
        }
    }
    Ok(())
}

/// A trainable student: variables, model, tokenizer and optimizer.
pub struct Trainer {
    model_dir: PathBuf,
    config: Config,
    model: XLMRobertaForSequenceClassification,
    encoder: PairEncoder,
    optimizer: AdamW,
    dropout: DropoutRng,
    use_dropout: bool,
    forward: Forward,
    grad_accum: usize,
    max_grad_norm: f64,
    device: Device,
}

impl Trainer {
    /// Loads the model directory of `cfg` into trainable f32 variables on `device`.
    pub fn new(cfg: &TrainConfig, device: &Device) -> Result<Self> {
        let config = load_config(&cfg.model)?;
        let weights = load_weights(&cfg.model, &config, device)?;
        let varmap = VarMap::new();
        let mut vars = Vec::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| Error::Other("variable map lock poisoned".into()))?;
            for (name, _) in config.expected_tensors() {
                let Some(t) = weights.get(&name) else {
                    return Err(Error::Other(format!("tensor {name} was not loaded")));
                };
                let var = Var::from_tensor(t)?;
                data.insert(name.clone(), var.clone());
                vars.push((name, var));
            }
        }
        let compute = if cfg.bf16 && device.is_cuda() {
            DType::BF16
        } else {
            if cfg.bf16 {
                tracing::warn!("--bf16 applies on CUDA only; computing in f32 on {device:?}");
            }
            DType::F32
        };
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = XLMRobertaForSequenceClassification::load(vb, &config, compute)?;
        let max_length = usable_max_length(&config, Some(cfg.max_length));
        let encoder = PairEncoder::from_file(
            &cfg.model.join(TOKENIZER_FILE),
            max_length,
            config.pad_token_id,
        )?;
        let params = AdamWParams {
            weight_decay: cfg.weight_decay,
            ..AdamWParams::default()
        };
        Ok(Trainer {
            model_dir: cfg.model.clone(),
            config,
            model,
            encoder,
            optimizer: AdamW::new(vars, params)?,
            dropout: DropoutRng::new(cfg.seed),
            use_dropout: cfg.dropout,
            forward: cfg.forward.resolve(device),
            grad_accum: cfg.grad_accum.max(1),
            max_grad_norm: cfg.max_grad_norm,
            device: device.clone(),
        })
    }

    /// MarginMSE of a micro-batch: `mean((s(q,pos) − s(q,neg) − label)²)`, with the positive
    /// and negative pairs in two separately padded forward passes as in the reference, or in
    /// one joint pass (see [`Forward`]).
    pub fn margin_mse(&self, batch: &[&Triplet], mode: Mode) -> Result<Tensor> {
        let pos: Vec<(&str, &str)> = batch
            .iter()
            .map(|t| (t.query.as_str(), t.positive.as_str()))
            .collect();
        let neg: Vec<(&str, &str)> = batch
            .iter()
            .map(|t| (t.query.as_str(), t.negative.as_str()))
            .collect();
        let labels: Vec<f32> = batch.iter().map(|t| t.score).collect();
        let labels = Tensor::from_vec(labels, batch.len(), &self.device)?;
        match self.forward {
            Forward::Auto | Forward::Separate => {
                let pos = self.encoder.encode(&pos, &self.device)?;
                let neg = self.encoder.encode(&neg, &self.device)?;
                margin_mse(&self.model, &pos, &neg, &labels, mode)
            }
            Forward::Joint => {
                let pairs = [pos, neg].concat();
                let joint = self.encoder.encode(&pairs, &self.device)?;
                joint_margin_mse(&self.model, &joint, &labels, mode)
            }
        }
    }

    /// Reseeds dropout for update `step`, so every update draws the same masks on a resume.
    pub fn reseed_dropout(&self, seed: u64, step: usize) -> Result<()> {
        let derived = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(step as u64);
        Ok(self.dropout.reseed(derived, &self.device)?)
    }

    /// Forward and backward of one micro-batch, its loss divided by the accumulation count
    /// (§C.4); adds the gradients into `grads` and returns the divided loss.
    pub fn accumulate(&self, batch: &[&Triplet], grads: &mut Grads) -> Result<f32> {
        let loss = self.accumulate_divided(batch, self.grad_accum as f64, grads)?;
        Ok(loss.to_scalar::<f32>()?)
    }

    /// Forward and backward of one micro-batch with its mean loss divided by `divisor`; adds
    /// the gradients into `grads` and returns the divided loss as a detached device scalar
    /// (reading it is a host sync, so the training loop sums these and reads once per update).
    pub fn accumulate_divided(
        &self,
        batch: &[&Triplet],
        divisor: f64,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let mode = Mode::Train(self.use_dropout.then_some(&self.dropout));
        let loss = (self.margin_mse(batch, mode)? / divisor)?;
        add_gradients(&loss, self.optimizer.vars(), grads)?;
        Ok(loss.detach())
    }

    /// Clips `grads` to the global norm and takes one AdamW step at `lr`; returns the norm
    /// before clipping.
    pub fn apply_update(&mut self, mut grads: Grads, lr: f64) -> Result<f32> {
        self.optimizer
            .clip_and_step(&mut grads, self.max_grad_norm, lr)
    }

    /// Mean MarginMSE over `triplets` without dropout, `batch_size` at a time.
    pub fn eval_loss(&self, triplets: &[Triplet], batch_size: usize) -> Result<f32> {
        let mut total = 0f64;
        let mut n_batches = 0usize;
        for chunk in triplets.chunks(batch_size.max(1)) {
            let refs: Vec<&Triplet> = chunk.iter().collect();
            total += self.margin_mse(&refs, Mode::Eval)?.to_scalar::<f32>()? as f64;
            n_batches += 1;
        }
        Ok((total / n_batches.max(1) as f64) as f32)
    }

    /// A snapshot (copy) of the current parameters by HF name; later updates do not change it.
    pub fn parameters(&self) -> Result<HashMap<String, Tensor>> {
        self.optimizer
            .vars()
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().detach().copy()?)))
            .collect()
    }

    /// The model configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The optimizer (for its state and step count).
    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    /// Restores parameters and optimizer moments from a checkpoint directory.
    pub fn restore(
        &mut self,
        dir: &Path,
        moments: &HashMap<String, Tensor>,
        adam_step: u64,
    ) -> Result<()> {
        let weights = load_weights(dir, &self.config, &self.device)?;
        for (name, var) in self.optimizer.vars() {
            let t = weights
                .get(name)
                .ok_or_else(|| Error::Other(format!("tensor {name} was not loaded")))?;
            var.set(t)?;
        }
        self.optimizer
            .load_state(moments, adam_step)
            .map_err(|message| Error::Model {
                path: dir.join(checkpoint::OPTIMIZER_FILE),
                message,
            })
    }

    /// Writes the current model as an HF directory: `config.json` (the source's, with the
    /// Sigmoid activation for `CrossEncoder`), F32 `model.safetensors` and the tokenizer files.
    pub fn save_model(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let src = self.model_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&src).map_err(|e| Error::io(&src, e))?;
        let mut json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::Model {
                path: src.clone(),
                message: format!("invalid config: {e}"),
            })?;
        if let Some(map) = json.as_object_mut() {
            crate::hf_config::set_export_dtype(map, "float32");
            let st = map
                .entry("sentence_transformers")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(st) = st.as_object_mut() {
                st.insert("activation_fn".into(), SIGMOID_ACTIVATION.into());
            }
        }
        write_json(&dir.join(CONFIG_FILE), &json)?;
        save_weights(&self.parameters()?, &dir.join(WEIGHTS_FILE))?;
        let tokenizer_files = [
            TOKENIZER_FILE,
            "tokenizer_config.json",
            "special_tokens_map.json",
            "sentencepiece.bpe.model",
        ];
        for name in tokenizer_files {
            let from = self.model_dir.join(name);
            if from.is_file() {
                let to = dir.join(name);
                std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        Ok(())
    }
}
