//! The student cross-encoder (`BAAI/bge-reranker-v2-m3`, `XLMRobertaForSequenceClassification`):
//! loading a Hugging Face model directory, pair encoding and scoring.
//!
//! Brief overview: [`xlm_roberta`] is the model, [`encode`] the pair tokenization, [`ops`] the
//! swappable hot paths, [`new_model`] writes random-weight models, and [`Student`] ties a
//! loaded model and its tokenizer together for inference.

pub mod encode;
pub mod new_model;
pub mod ops;
pub mod parity;
pub mod predict;
pub mod xlm_roberta;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::{Error, Result};
use encode::{length_sorted_batches, pad_batch, PairEncoder};
use ops::Mode;
use xlm_roberta::{Config, XLMRobertaForSequenceClassification};

/// File name of the model configuration in an HF directory.
pub const CONFIG_FILE: &str = "config.json";
/// File name of single-file weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the shard index of sharded weights.
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";
/// File name of the tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

fn model_error(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
    Error::Model {
        path: path.into(),
        message: message.into(),
    }
}

/// Reads and validates `config.json` of a model directory, in the form of transformers 4.x or
/// 5.x (see [`crate::hf_config`]).
pub fn load_config(dir: &Path) -> Result<Config> {
    let path = dir.join(CONFIG_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let cfg: Config = crate::hf_config::parse(&path, &bytes, "an XLM-RoBERTa config")?;
    cfg.validate().map_err(|m| model_error(&path, m))?;
    Ok(cfg)
}

/// The weight files of a model directory and which file holds each tensor.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(WEIGHTS_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(WEIGHTS_INDEX_FILE);
    if !index.is_file() {
        return Err(model_error(
            dir,
            format!("neither {WEIGHTS_FILE} nor {WEIGHTS_INDEX_FILE} exists"),
        ));
    }
    let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| model_error(&index, format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| model_error(&index, "missing object \"weight_map\""))?;
    let mut shards: Vec<PathBuf> = Vec::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| model_error(&index, format!("weight_map.{tensor}: not a string")))?;
        let path = dir.join(file);
        if !shards.contains(&path) {
            shards.push(path);
        }
    }
    Ok(shards)
}

/// Loads every tensor the model needs as f32 on `device`, checking names and shapes.
/// Errors name the file and the tensor.
pub fn load_weights(dir: &Path, cfg: &Config, device: &Device) -> Result<HashMap<String, Tensor>> {
    let mut found: HashMap<String, (Tensor, PathBuf)> = HashMap::new();
    let files = weight_files(dir)?;
    for file in &files {
        if !file.is_file() {
            return Err(model_error(
                file,
                "weight shard listed in the index is missing",
            ));
        }
        let tensors = candle_core::safetensors::load(file, &Device::Cpu)
            .map_err(|e| model_error(file, format!("cannot read safetensors: {e}")))?;
        for (name, t) in tensors {
            found.insert(name, (t, file.clone()));
        }
    }
    let mut out = HashMap::new();
    for (name, shape) in cfg.expected_tensors() {
        let Some((t, file)) = found.remove(&name) else {
            let where_ = if files.len() == 1 {
                files[0].clone()
            } else {
                dir.join(WEIGHTS_INDEX_FILE)
            };
            return Err(model_error(where_, format!("tensor {name} is missing")));
        };
        if t.dims() != shape.as_slice() {
            return Err(model_error(
                file,
                format!(
                    "tensor {name} has shape {:?}, config.json implies {shape:?}",
                    t.dims()
                ),
            ));
        }
        let t = t
            .to_dtype(DType::F32)
            .and_then(|t| t.to_device(device))
            .map_err(|e| model_error(&file, format!("tensor {name}: {e}")))?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Saves `tensors` as an F32 `model.safetensors` (atomically: temp file, then rename).
pub fn save_weights(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let host: HashMap<&str, Tensor> = tensors
        .iter()
        .map(|(k, t)| Ok((k.as_str(), t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(&host, &tmp)
        .map_err(|e| model_error(&tmp, format!("cannot write safetensors: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The token budget of a pair: `requested`, capped at (and by default) the longest sequence the
/// position table holds, `max_position_embeddings − pad_token_id − 1` (8192 for bge-reranker-v2-m3).
pub fn usable_max_length(config: &Config, requested: Option<usize>) -> usize {
    let limit = config
        .max_position_embeddings
        .saturating_sub(config.pad_token_id as usize + 1);
    match requested {
        Some(n) if n > limit => {
            tracing::warn!("max length {n} exceeds the model's {limit} positions; using {limit}");
            limit
        }
        Some(n) => n,
        None => limit,
    }
}

/// A loaded student for inference: weights as plain (untracked) tensors plus the tokenizer.
pub struct Student {
    model: XLMRobertaForSequenceClassification,
    encoder: PairEncoder,
    config: Config,
    device: Device,
}

impl Student {
    /// Loads an HF model directory (`config.json`, weights, `tokenizer.json`). Pairs are
    /// truncated to `max_length` tokens; `None` means what `CrossEncoder` uses at evaluation
    /// (see [`usable_max_length`]).
    pub fn load(dir: &Path, device: &Device, max_length: impl Into<Option<usize>>) -> Result<Self> {
        Self::load_with_dtype(dir, device, max_length, DType::F32)
    }

    /// [`Student::load`] with matmuls in `compute_dtype` (bf16 on CUDA: dense weights are cast
    /// once; LayerNorm and softmax statistics stay f32; batches of right-padded pairs of at most
    /// 128 tokens take the packed, padding-free path, whose residual stream is bf16 as in a bf16
    /// PyTorch model; see `xlm_roberta/packed.rs`).
    pub fn load_with_dtype(
        dir: &Path,
        device: &Device,
        max_length: impl Into<Option<usize>>,
        compute_dtype: DType,
    ) -> Result<Self> {
        let config = load_config(dir)?;
        let max_length = usable_max_length(&config, max_length.into());
        let weights = load_weights(dir, &config, device)?;
        let vb = VarBuilder::from_tensors(weights, DType::F32, device);
        let model =
            XLMRobertaForSequenceClassification::load_inference(vb, &config, compute_dtype)?;
        let encoder =
            PairEncoder::from_file(&dir.join(TOKENIZER_FILE), max_length, config.pad_token_id)?;
        Ok(Student {
            model,
            encoder,
            config,
            device: device.clone(),
        })
    }

    /// The model configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The pair encoder (tokenizer with truncation) of this model.
    pub fn encoder(&self) -> &PairEncoder {
        &self.encoder
    }

    /// Raw logits of one encoded batch, shape `[B]`.
    pub fn logits(&self, batch: &encode::EncodedBatch) -> Result<Vec<f32>> {
        let logits = self.model.forward(
            &batch.input_ids,
            &batch.position_ids,
            &batch.attention_mask,
            Mode::Eval,
        )?;
        Ok(logits.to_vec1::<f32>()?)
    }

    /// Raw logits (no sigmoid) of every (query, passage) pair, in input order. Pairs are batched
    /// by length, longest first, `batch_size` at a time.
    pub fn score_pairs(&self, pairs: &[(&str, &str)], batch_size: usize) -> Result<Vec<f32>> {
        self.score_pairs_with(pairs, batch_size, |_| {})
    }

    /// [`Student::score_pairs`], calling `on_batch(n_pairs)` after every batch (for progress).
    pub fn score_pairs_with(
        &self,
        pairs: &[(&str, &str)],
        batch_size: usize,
        mut on_batch: impl FnMut(usize),
    ) -> Result<Vec<f32>> {
        let ids = self.encoder.token_ids(pairs)?;
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let mut scores = vec![0f32; pairs.len()];
        for batch in length_sorted_batches(&lengths, batch_size) {
            let rows: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
            let enc = pad_batch(&rows, self.config.pad_token_id, &self.device)?;
            let logits = self
                .model
                .forward(
                    &enc.input_ids,
                    &enc.position_ids,
                    &enc.attention_mask,
                    Mode::Eval,
                )?
                .to_vec1::<f32>()?;
            for (&i, s) in batch.iter().zip(logits) {
                scores[i] = s;
            }
            on_batch(batch.len());
        }
        Ok(scores)
    }
}
