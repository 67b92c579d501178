//! `XLMRobertaForSequenceClassification` (transformers 4.53 `modeling_xlm_roberta.py`) in candle,
//! trainable: dropout in training, differentiable LayerNorm and softmax, integer position ids,
//! a padded-key mask and the `dense → tanh → out_proj` head on `<s>` (spec §E.2).
//!
//! Weight names are the Hugging Face ones (`roberta.…`, `classifier.…`), so checkpoints load and
//! save without renaming. Struct names follow the HF classes.

use candle_core::{DType, Module, Tensor};
use candle_nn::{Embedding, VarBuilder};
use serde::{Deserialize, Serialize};

use super::ops::{self, Mode};

#[cfg(feature = "cuda")]
mod packed;
mod packing;

pub use packing::MAX_LEN as PACKED_MAX_LEN;

/// The fields of an HF `config.json` that the model reads, in the form
/// [`crate::hf_config::normalize`] gives (transformers 4.x and 5.x files alike; 5.x no longer
/// writes `position_embedding_type`, which then defaults to `"absolute"`, its only value there).
/// Unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `"xlm-roberta"` or `"roberta"` (same architecture).
    pub model_type: String,
    /// HF class names; must include `XLMRobertaForSequenceClassification` (or the RoBERTa one).
    pub architectures: Vec<String>,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Activation; only `"gelu"` (exact erf form) is supported.
    pub hidden_act: String,
    /// Dropout after dense layers and embeddings.
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    pub attention_probs_dropout_prob: f64,
    /// Head dropout; `null` means `hidden_dropout_prob`.
    pub classifier_dropout: Option<f64>,
    /// Rows of the position-embedding table.
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Id of `<pad>`; also the position `padding_idx`.
    pub pad_token_id: u32,
    /// Id of `<s>`.
    pub bos_token_id: u32,
    /// Id of `</s>`.
    pub eos_token_id: u32,
    /// Only `"absolute"` is supported.
    pub position_embedding_type: String,
    /// Standard deviation of the normal init of new models.
    pub initializer_range: f64,
    /// Labels of the head; a reranker has one.
    pub id2label: Option<serde_json::Map<String, serde_json::Value>>,
    /// The dtype the checkpoint declares (`dtype`, or `torch_dtype` before transformers 4.56).
    /// Informational: weights load as f32. Not serialised: exports write `torch_dtype`.
    #[serde(skip_serializing)]
    pub dtype: Option<String>,
}

impl Default for Config {
    /// The configuration of `BAAI/bge-reranker-v2-m3` (XLM-R large, 568M parameters).
    fn default() -> Self {
        Config {
            model_type: "xlm-roberta".into(),
            architectures: vec![ARCHITECTURE.into()],
            vocab_size: 250_002,
            hidden_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            intermediate_size: 4096,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            classifier_dropout: None,
            max_position_embeddings: 8194,
            type_vocab_size: 1,
            layer_norm_eps: 1e-5,
            pad_token_id: 1,
            bos_token_id: 0,
            eos_token_id: 2,
            position_embedding_type: "absolute".into(),
            initializer_range: 0.02,
            id2label: None,
            dtype: None,
        }
    }
}

/// The HF class this module implements.
pub const ARCHITECTURE: &str = "XLMRobertaForSequenceClassification";

impl Config {
    /// `BAAI/bge-reranker-v2-m3`.
    pub fn bge_reranker_v2_m3() -> Self {
        Config::default()
    }

    /// A tiny model for tests: hidden 32, 2 layers, 4 heads, `vocab_size` tokens. Its init is
    /// ten times wider than HF's, so that random logits depend visibly on the input.
    pub fn tiny(vocab_size: usize) -> Self {
        Config {
            vocab_size,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            max_position_embeddings: 130,
            initializer_range: 0.2,
            ..Config::default()
        }
    }

    /// Number of head outputs (`len(id2label)`, 1 when absent).
    pub fn num_labels(&self) -> usize {
        self.id2label.as_ref().map_or(1, |m| m.len().max(1))
    }

    /// Probability of the head's dropout.
    pub fn classifier_dropout_prob(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }

    /// Rejects settings this implementation does not support, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.model_type.as_str(), "xlm-roberta" | "roberta") {
            return Err(format!(
                "model_type {:?} is not xlm-roberta or roberta",
                self.model_type
            ));
        }
        let known = [ARCHITECTURE, "RobertaForSequenceClassification"];
        if !self
            .architectures
            .iter()
            .any(|a| known.contains(&a.as_str()))
        {
            return Err(format!(
                "architectures {:?}: expected {ARCHITECTURE}",
                self.architectures
            ));
        }
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.num_labels() != 1 {
            return Err(format!(
                "id2label has {} labels; a reranker has 1",
                self.num_labels()
            ));
        }
        Ok(())
    }

    /// Every tensor of the checkpoint, with its HF name and shape, in module order.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        fn param(out: &mut Vec<(String, Vec<usize>)>, name: &str, suffix: &str, shape: &[usize]) {
            out.push((format!("{name}.{suffix}"), shape.to_vec()));
        }
        fn linear(out: &mut Vec<(String, Vec<usize>)>, name: &str, n_out: usize, n_in: usize) {
            param(out, name, "weight", &[n_out, n_in]);
            param(out, name, "bias", &[n_out]);
        }
        fn norm(out: &mut Vec<(String, Vec<usize>)>, name: &str, n: usize) {
            param(out, name, "weight", &[n]);
            param(out, name, "bias", &[n]);
        }
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let mut out = Vec::new();
        let e = "roberta.embeddings";
        param(
            &mut out,
            &format!("{e}.word_embeddings"),
            "weight",
            &[self.vocab_size, h],
        );
        let n_pos = self.max_position_embeddings;
        param(
            &mut out,
            &format!("{e}.position_embeddings"),
            "weight",
            &[n_pos, h],
        );
        let n_types = self.type_vocab_size;
        param(
            &mut out,
            &format!("{e}.token_type_embeddings"),
            "weight",
            &[n_types, h],
        );
        norm(&mut out, &format!("{e}.LayerNorm"), h);
        for l in 0..self.num_hidden_layers {
            let p = format!("roberta.encoder.layer.{l}");
            for qkv in ["query", "key", "value"] {
                linear(&mut out, &format!("{p}.attention.self.{qkv}"), h, h);
            }
            linear(&mut out, &format!("{p}.attention.output.dense"), h, h);
            norm(&mut out, &format!("{p}.attention.output.LayerNorm"), h);
            linear(&mut out, &format!("{p}.intermediate.dense"), i, h);
            linear(&mut out, &format!("{p}.output.dense"), h, i);
            norm(&mut out, &format!("{p}.output.LayerNorm"), h);
        }
        linear(&mut out, "classifier.dense", h, h);
        linear(&mut out, "classifier.out_proj", self.num_labels(), h);
        out
    }
}

/// How the model holds its weights.
#[derive(Clone, Copy)]
struct Load {
    /// Matmuls run in this dtype.
    compute: DType,
    /// Inference: dense weights are cast to `compute` once at load (detached from any `Var`);
    /// training casts the f32 master weights at every use, so gradients reach them.
    precast: bool,
}

/// A dense layer `y = x Wᵀ + b` whose matmul runs in the compute dtype; the bias stays f32.
struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn load(vb: VarBuilder, n_in: usize, n_out: usize, how: Load) -> candle_core::Result<Self> {
        let weight = vb.get((n_out, n_in), "weight")?;
        Ok(Linear {
            weight: if how.precast {
                weight.to_dtype(how.compute)?.detach()
            } else {
                weight
            },
            bias: vb.get(n_out, "bias")?,
        })
    }

    /// `x Wᵀ` without the bias, over the last dimension, in the compute dtype. A 2-D `x`
    /// (the encoder's `[tokens, hidden]`) needs no reshape, so no extra graph node.
    fn matmul(&self, xs: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
        let w = self.weight.to_dtype(dtype)?;
        if xs.rank() == 2 {
            // `contiguous` is free (no copy, no node) unless `xs` is a view such as the
            // classifier's `<s>` rows, which the CUDA matmul cannot take.
            return xs.to_dtype(dtype)?.contiguous()?.matmul(&w.t()?);
        }
        let dims = xs.dims().to_vec();
        let n_in = dims[dims.len() - 1];
        let rows = xs.elem_count() / n_in.max(1);
        let y = xs.to_dtype(dtype)?.reshape((rows, n_in))?.matmul(&w.t()?)?;
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.weight.dim(0)?;
        y.reshape(out_dims)
    }

    /// `x Wᵀ + b` in f32.
    fn forward(&self, xs: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
        self.matmul(xs, dtype)?
            .to_dtype(DType::F32)?
            .broadcast_add(&self.bias)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(LayerNorm {
            weight: vb.get(size, "weight")?,
            bias: vb.get(size, "bias")?,
            eps,
        })
    }

    fn forward(&self, xs: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        ops::layer_norm(xs, &self.weight, &self.bias, self.eps, mode)
    }
}

struct XLMRobertaEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    token_type_row: Tensor,
    layer_norm: LayerNorm,
    dropout: f64,
}

impl XLMRobertaEmbeddings {
    fn load(vb: VarBuilder, cfg: &Config) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let emb = |n: usize, name: &str| -> candle_core::Result<Embedding> {
            Ok(Embedding::new(vb.pp(name).get((n, h), "weight")?, h))
        };
        let token_type = vb
            .pp("token_type_embeddings")
            .get((cfg.type_vocab_size, h), "weight")?;
        Ok(XLMRobertaEmbeddings {
            word_embeddings: emb(cfg.vocab_size, "word_embeddings")?,
            position_embeddings: emb(cfg.max_position_embeddings, "position_embeddings")?,
            token_type_row: token_type.narrow(0, 0, 1)?,
            layer_norm: LayerNorm::load(vb.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            dropout: cfg.hidden_dropout_prob,
        })
    }

    /// `LN(word[ids] + type[0] + pos[position_ids])`; token types are all zero (§B.2).
    /// Returns `[B·L, hidden]`.
    fn forward(
        &self,
        input_ids: &Tensor,
        position_ids: &Tensor,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let words = self.word_embeddings.forward(&input_ids.flatten_all()?)?;
        let positions = self
            .position_embeddings
            .forward(&position_ids.flatten_all()?)?;
        let xs = (words + positions)?.broadcast_add(&self.token_type_row)?;
        let xs = self.layer_norm.forward(&xs, mode)?;
        ops::dropout(&xs, self.dropout, mode)
    }
}

struct XLMRobertaSelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    num_heads: usize,
    head_dim: usize,
    dropout: f64,
}

impl XLMRobertaSelfAttention {
    fn load(vb: VarBuilder, cfg: &Config, how: Load) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        Ok(XLMRobertaSelfAttention {
            query: Linear::load(vb.pp("query"), h, h, how)?,
            key: Linear::load(vb.pp("key"), h, h, how)?,
            value: Linear::load(vb.pp("value"), h, h, how)?,
            num_heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
            dropout: cfg.attention_probs_dropout_prob,
        })
    }

    /// `[B·L, H]` projected by `linear`, plus its bias, as heads `[B, H, L, Dh]` in `dtype`.
    fn heads(
        &self,
        linear: &Linear,
        xs: &Tensor,
        batch: usize,
        dtype: DType,
    ) -> candle_core::Result<Tensor> {
        let ys = linear.matmul(xs, dtype)?;
        ops::head_split_bias(&ys, &linear.bias, batch, self.num_heads, dtype)
    }

    /// `softmax(QKᵀ/√d + M) V` over the tokens `[B·L, H]` with the additive key mask `M` of
    /// shape `[B, L]`; returns the context `[B·L, H]` in `dtype`.
    fn forward(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        dtype: DType,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let (b, _) = mask.dims2()?;
        let xs = xs.to_dtype(dtype)?;
        let q = self.heads(&self.query, &xs, b, dtype)?;
        let k = self.heads(&self.key, &xs, b, dtype)?;
        let v = self.heads(&self.value, &xs, b, dtype)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = q.matmul(&k.t()?)?;
        let probs = ops::attention_probs(&scores, mask, scale, self.dropout, mode, dtype)?;
        ops::head_merge(&probs.matmul(&v)?)
    }
}

/// `LN(dropout(x W + b) + residual)`: `XLMRobertaSelfOutput` and `XLMRobertaOutput`.
struct XLMRobertaOutput {
    dense: Linear,
    layer_norm: LayerNorm,
    dropout: f64,
}

impl XLMRobertaOutput {
    fn load(vb: VarBuilder, n_in: usize, cfg: &Config, how: Load) -> candle_core::Result<Self> {
        Ok(XLMRobertaOutput {
            dense: Linear::load(vb.pp("dense"), n_in, cfg.hidden_size, how)?,
            layer_norm: LayerNorm::load(vb.pp("LayerNorm"), cfg.hidden_size, cfg.layer_norm_eps)?,
            dropout: cfg.hidden_dropout_prob,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        residual: &Tensor,
        dtype: DType,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let ys = self.dense.matmul(xs, dtype)?;
        let ys = ops::bias_dropout_residual(&ys, &self.dense.bias, residual, self.dropout, mode)?;
        self.layer_norm.forward(&ys, mode)
    }
}

struct XLMRobertaLayer {
    attention: XLMRobertaSelfAttention,
    attention_output: XLMRobertaOutput,
    intermediate: Linear,
    output: XLMRobertaOutput,
}

impl XLMRobertaLayer {
    fn load(vb: VarBuilder, cfg: &Config, how: Load) -> candle_core::Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(XLMRobertaLayer {
            attention: XLMRobertaSelfAttention::load(vb.pp("attention.self"), cfg, how)?,
            attention_output: XLMRobertaOutput::load(vb.pp("attention.output"), h, cfg, how)?,
            intermediate: Linear::load(vb.pp("intermediate.dense"), h, i, how)?,
            output: XLMRobertaOutput::load(vb.pp("output"), i, cfg, how)?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        dtype: DType,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        let ctx = self.attention.forward(xs, mask, dtype, mode)?;
        let a = self.attention_output.forward(&ctx, xs, dtype, mode)?;
        let i = ops::bias_gelu(
            &self.intermediate.matmul(&a, dtype)?,
            &self.intermediate.bias,
        )?;
        self.output.forward(&i, &a, dtype, mode)
    }
}

struct XLMRobertaClassificationHead {
    dense: Linear,
    out_proj: Linear,
    dropout: f64,
}

impl XLMRobertaClassificationHead {
    fn load(vb: VarBuilder, cfg: &Config, how: Load) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        Ok(XLMRobertaClassificationHead {
            dense: Linear::load(vb.pp("dense"), h, h, how)?,
            out_proj: Linear::load(vb.pp("out_proj"), h, cfg.num_labels(), how)?,
            dropout: cfg.classifier_dropout_prob(),
        })
    }

    /// `out_proj(tanh(dense(dropout(x[:, 0]))))` with dropout before `out_proj` too; `xs` is
    /// `[B, L, H]`.
    fn forward(&self, xs: &Tensor, dtype: DType, mode: Mode) -> candle_core::Result<Tensor> {
        let cls = xs.narrow(1, 0, 1)?.squeeze(1)?;
        let cls = ops::dropout(&cls, self.dropout, mode)?;
        let hidden = self.dense.forward(&cls, dtype)?.tanh()?;
        let hidden = ops::dropout(&hidden, self.dropout, mode)?;
        self.out_proj.forward(&hidden, dtype)
    }
}

/// The cross-encoder: `roberta` encoder without pooler, plus the classification head.
pub struct XLMRobertaForSequenceClassification {
    embeddings: XLMRobertaEmbeddings,
    layers: Vec<XLMRobertaLayer>,
    classifier: XLMRobertaClassificationHead,
    compute_dtype: DType,
    /// The padding-free bf16 evaluation path (inference loads on CUDA only).
    #[cfg(feature = "cuda")]
    packed: Option<packed::Packed>,
}

impl XLMRobertaForSequenceClassification {
    /// Builds the model from `vb` (HF names); matmuls run in `compute_dtype` (f32 or bf16),
    /// LayerNorm and softmax in f32, as under PyTorch autocast. Dense weights are cast at every
    /// use, so a `Var` behind them gets its gradient (training).
    pub fn load(vb: VarBuilder, cfg: &Config, compute_dtype: DType) -> candle_core::Result<Self> {
        Self::load_with(
            vb,
            cfg,
            Load {
                compute: compute_dtype,
                precast: false,
            },
        )
    }

    /// Like [`Self::load`] for inference: dense weights are cast to `compute_dtype` once.
    pub fn load_inference(
        vb: VarBuilder,
        cfg: &Config,
        compute_dtype: DType,
    ) -> candle_core::Result<Self> {
        Self::load_with(
            vb,
            cfg,
            Load {
                compute: compute_dtype,
                precast: true,
            },
        )
    }

    fn load_with(vb: VarBuilder, cfg: &Config, how: Load) -> candle_core::Result<Self> {
        let compute_dtype = how.compute;
        let roberta = vb.pp("roberta");
        let embeddings = XLMRobertaEmbeddings::load(roberta.pp("embeddings"), cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| XLMRobertaLayer::load(roberta.pp(format!("encoder.layer.{i}")), cfg, how))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let classifier = XLMRobertaClassificationHead::load(vb.pp("classifier"), cfg, how)?;
        #[cfg(feature = "cuda")]
        let packed = if how.precast {
            packed::Packed::build(&embeddings, &layers, cfg, compute_dtype, vb.device())?
        } else {
            None
        };
        Ok(XLMRobertaForSequenceClassification {
            embeddings,
            layers,
            classifier,
            compute_dtype,
            #[cfg(feature = "cuda")]
            packed,
        })
    }

    /// Logits of shape `[B]` for `input_ids`, `position_ids` (u32, `[B, L]`) and
    /// `attention_mask` (f32, 1 for real tokens and 0 for padding).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        position_ids: &Tensor,
        attention_mask: &Tensor,
        mode: Mode,
    ) -> candle_core::Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let (Mode::Eval, Some(packed)) = (mode, &self.packed) {
            if crate::kernels::enabled() && crate::kernels::infer::packed_enabled() {
                if let Some(logits) =
                    packed.forward(self, input_ids, position_ids, attention_mask)?
                {
                    return Ok(logits);
                }
            }
        }
        let (b, l) = input_ids.dims2()?;
        // Additive key mask `[B, L]`: 0 for real keys, f32::MIN for padding (HF
        // `_prepare_4d_attention_mask`).
        let mask = ((1.0 - attention_mask.to_dtype(DType::F32)?)? * f64::from(f32::MIN))?;
        // The encoder works on `[B·L, hidden]` rows: no reshapes between layers.
        let mut xs = self.embeddings.forward(input_ids, position_ids, mode)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask, self.compute_dtype, mode)?;
        }
        let xs = xs.reshape((b, l, ()))?;
        self.classifier
            .forward(&xs, self.compute_dtype, mode)?
            .reshape(b)
    }
}

/// HF `create_position_ids_from_input_ids` in integers: real tokens get `pad + 1 + rank` counted
/// over non-pad tokens only, pads get `pad`.
pub fn position_ids(input_ids: &[u32], pad_token_id: u32) -> Vec<u32> {
    let mut seen = 0u32;
    input_ids
        .iter()
        .map(|&id| {
            if id == pad_token_id {
                pad_token_id
            } else {
                seen += 1;
                pad_token_id + seen
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_ids_follow_hf_rule() {
        assert_eq!(position_ids(&[0, 5, 6, 2, 1, 1], 1), vec![2, 3, 4, 5, 1, 1]);
        assert_eq!(position_ids(&[0, 1, 7, 2], 1), vec![2, 1, 3, 4]);
    }

    #[test]
    fn bge_parameter_count_matches_spec() {
        let n: usize = Config::bge_reranker_v2_m3()
            .expected_tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(n, 567_755_777);
    }

    #[test]
    fn config_defaults_fill_missing_keys_and_validate_rejects() {
        let cfg: Config =
            serde_json::from_str(r#"{"hidden_size": 64, "num_attention_heads": 4}"#).unwrap();
        assert_eq!(cfg.vocab_size, 250_002);
        assert!(cfg.validate().is_ok());
        let bad: Config = serde_json::from_str(r#"{"architectures": ["BertModel"]}"#).unwrap();
        assert!(bad.validate().unwrap_err().contains("architectures"));
        let bad: Config = serde_json::from_str(r#"{"hidden_act": "relu"}"#).unwrap();
        assert!(bad.validate().unwrap_err().contains("hidden_act"));
    }
}
