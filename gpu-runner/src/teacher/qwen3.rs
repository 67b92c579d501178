//! Qwen3 (`Qwen3ForCausalLM`) as a yes/no reranker scorer, in the candle style.
//!
//! Mirrors transformers 4.53.2 `models/qwen3/modeling_qwen3.py` (spec §E.3) with three
//! differences that only make scoring cheaper:
//! * sequences are **right**-padded and start at position `prefix_len`, so a causal mask alone
//!   keeps every real query away from padding and RoPE positions equal the unpadded ones;
//! * a shared prompt prefix can be run once ([`Qwen3Scorer::prefix`]) and its keys and values
//!   reused for every batch ([`Qwen3Scorer::score_batch`]);
//! * only the last position's hidden state is normed and projected, on the single vector
//!   `w_yes − w_no` (two rows of `lm_head`), never on the full vocabulary.
//!
//! Query-level reuse goes one step further: [`Qwen3Scorer::segments`] runs each query's tokens
//! once on top of the shared prefix, and [`Qwen3Scorer::score_in_segments`] scores every
//! document of the query against those keys and values. The hot paths live in [`super::ops`].

pub use super::config::Config;
use super::ops::{attention, causal_mask, rms_norm, segment_mask};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

/// Positions whose RoPE tables are made once at load and gathered on the device per batch.
const ROPE_TABLE_LEN: usize = 8192;

/// NeoX-style rotary embedding. Angles are computed in f32 and cast to the activation dtype,
/// once at load for the first [`ROPE_TABLE_LEN`] positions (gathered per batch on the device),
/// per call beyond them.
#[derive(Debug, Clone)]
struct Qwen3RotaryEmbedding {
    inv_freq: Vec<f32>,
    /// `cos`, `sin` `[ROPE_TABLE_LEN, Dh/2]` of positions `0..`.
    table: Option<(Tensor, Tensor)>,
}

impl Qwen3RotaryEmbedding {
    fn new(cfg: &Config, dtype: DType, dev: &Device) -> Result<Self> {
        let dim = cfg.head_dim;
        let base = cfg.rope_theta as f32;
        let inv_freq = (0..dim / 2)
            .map(|j| 1.0 / base.powf((2 * j) as f32 / dim as f32))
            .collect();
        let mut rope = Self {
            inv_freq,
            table: None,
        };
        let len = ROPE_TABLE_LEN.min(cfg.max_position_embeddings);
        rope.table = Some(rope.cos_sin(0, len, dtype, dev)?);
        Ok(rope)
    }

    /// The tables of positions `starts[b] .. starts[b] + len`, gathered from the load-time table.
    fn gather(&self, starts: &[usize], len: usize) -> Result<Option<(Tensor, Tensor)>> {
        let Some((cos, sin)) = &self.table else {
            return Ok(None);
        };
        if starts.iter().any(|&s| s + len > cos.dim(0).unwrap_or(0)) {
            return Ok(None);
        }
        if starts.windows(2).all(|w| w[0] == w[1]) {
            let s = starts.first().copied().unwrap_or(0);
            return Ok(Some((cos.narrow(0, s, len)?, sin.narrow(0, s, len)?)));
        }
        let pos: Vec<u32> = starts
            .iter()
            .flat_map(|&s| (s..s + len).map(|p| p as u32))
            .collect();
        let pos = Tensor::new(pos, cos.device())?;
        let half = self.inv_freq.len();
        let shape = (starts.len(), len, half);
        Ok(Some((
            cos.index_select(&pos, 0)?.reshape(shape)?,
            sin.index_select(&pos, 0)?.reshape(shape)?,
        )))
    }

    /// `cos`, `sin` of shape `[len, Dh/2]` for positions `start .. start + len`, in `dtype`.
    fn cos_sin(
        &self,
        start: usize,
        len: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let angles: Vec<f32> = (start..start + len)
            .flat_map(|p| self.inv_freq.iter().map(move |f| p as f32 * f))
            .collect();
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let cos = Tensor::from_vec(cos, (len, half), dev)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (len, half), dev)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// Tables for sequences starting at different positions: `[B, len, Dh/2]` when the starts
    /// differ, else the shared `[len, Dh/2]` ones.
    fn cos_sin_at(
        &self,
        starts: &[usize],
        len: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<(Tensor, Tensor)> {
        if let Some(tables) = self.gather(starts, len)? {
            return Ok(tables);
        }
        if starts.windows(2).all(|w| w[0] == w[1]) {
            return self.cos_sin(starts.first().copied().unwrap_or(0), len, dtype, dev);
        }
        let half = self.inv_freq.len();
        let angles: Vec<f32> = starts
            .iter()
            .flat_map(|&s| {
                (s..s + len).flat_map(|p| self.inv_freq.iter().map(move |f| p as f32 * f))
            })
            .collect();
        let shape = (starts.len(), len, half);
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let cos = Tensor::from_vec(cos, shape, dev)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, shape, dev)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }
}

#[derive(Debug, Clone)]
struct Qwen3RMSNorm {
    weight: Tensor,
    eps: f64,
}

impl Qwen3RMSNorm {
    fn load(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?,
            eps,
        })
    }
}

impl Module for Qwen3RMSNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm(x, &self.weight, self.eps)
    }
}

#[derive(Debug, Clone)]
struct Qwen3MLP {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Qwen3MLP {
    fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: candle_nn::linear_no_bias(h, i, vb.pp("gate_proj"))?,
            up_proj: candle_nn::linear_no_bias(h, i, vb.pp("up_proj"))?,
            down_proj: candle_nn::linear_no_bias(i, h, vb.pp("down_proj"))?,
        })
    }
}

impl Module for Qwen3MLP {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&x.apply(&self.gate_proj)?)?;
        (gate * x.apply(&self.up_proj)?)?.apply(&self.down_proj)
    }
}

#[derive(Debug, Clone)]
struct Qwen3Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Qwen3RMSNorm,
    k_norm: Qwen3RMSNorm,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl Qwen3Attention {
    fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (h, dh) = (cfg.hidden_size, cfg.head_dim);
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        Ok(Self {
            q_proj: candle_nn::linear_no_bias(h, nh * dh, vb.pp("q_proj"))?,
            k_proj: candle_nn::linear_no_bias(h, nkv * dh, vb.pp("k_proj"))?,
            v_proj: candle_nn::linear_no_bias(h, nkv * dh, vb.pp("v_proj"))?,
            o_proj: candle_nn::linear_no_bias(nh * dh, h, vb.pp("o_proj"))?,
            q_norm: Qwen3RMSNorm::load(dh, cfg.rms_norm_eps, vb.pp("q_norm"))?,
            k_norm: Qwen3RMSNorm::load(dh, cfg.rms_norm_eps, vb.pp("k_norm"))?,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: dh,
        })
    }

    /// Projects `x` `[B, L, H]` to heads `[B, n, L, Dh]`, with the per-head norm and RoPE.
    fn heads(
        &self,
        x: &Tensor,
        proj: &Linear,
        norm: Option<&Qwen3RMSNorm>,
        n: usize,
        rope: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        let mut t = x.apply(proj)?.reshape((b, l, n, self.head_dim))?;
        if let Some(norm) = norm {
            t = t.apply(norm)?;
        }
        let t = t.transpose(1, 2)?.contiguous()?;
        match rope {
            Some((cos, sin)) => candle_nn::rotary_emb::rope(&t, cos, sin),
            None => Ok(t),
        }
    }

    /// Returns the attention output and this call's keys and values `[B, Hkv, L, Dh]`.
    fn forward(
        &self,
        x: &Tensor,
        (cos, sin, mask): (&Tensor, &Tensor, &Tensor),
        past: &[(Tensor, Tensor)],
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, l, _) = x.dims3()?;
        let rope = Some((cos, sin));
        let q = self.heads(x, &self.q_proj, Some(&self.q_norm), self.n_heads, rope)?;
        let k = self.heads(x, &self.k_proj, Some(&self.k_norm), self.n_kv_heads, rope)?;
        let v = self.heads(x, &self.v_proj, None, self.n_kv_heads, None)?;
        let (k_all, v_all) = if past.is_empty() {
            (k.clone(), v.clone())
        } else {
            let widen = |t: &Tensor| -> Result<Tensor> {
                let (_, nkv, p, dh) = t.dims4()?;
                t.broadcast_as((b, nkv, p, dh))
            };
            let mut ks = past
                .iter()
                .map(|(pk, _)| widen(pk))
                .collect::<Result<Vec<_>>>()?;
            let mut vs = past
                .iter()
                .map(|(_, pv)| widen(pv))
                .collect::<Result<Vec<_>>>()?;
            ks.push(k.clone());
            vs.push(v.clone());
            (Tensor::cat(&ks, 2)?, Tensor::cat(&vs, 2)?)
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let out = attention(&q, &k_all, &v_all, mask, scale)?;
        let out = out
            .transpose(1, 2)?
            .reshape((b, l, self.n_heads * self.head_dim))?
            .apply(&self.o_proj)?;
        Ok((out, k, v))
    }
}

#[derive(Debug, Clone)]
struct Qwen3DecoderLayer {
    self_attn: Qwen3Attention,
    mlp: Qwen3MLP,
    input_layernorm: Qwen3RMSNorm,
    post_attention_layernorm: Qwen3RMSNorm,
}

impl Qwen3DecoderLayer {
    fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(Self {
            self_attn: Qwen3Attention::load(cfg, vb.pp("self_attn"))?,
            mlp: Qwen3MLP::load(cfg, vb.pp("mlp"))?,
            input_layernorm: Qwen3RMSNorm::load(h, eps, vb.pp("input_layernorm"))?,
            post_attention_layernorm: Qwen3RMSNorm::load(
                h,
                eps,
                vb.pp("post_attention_layernorm"),
            )?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        tables: (&Tensor, &Tensor, &Tensor),
        past: &[(Tensor, Tensor)],
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (attn, k, v) =
            self.self_attn
                .forward(&x.apply(&self.input_layernorm)?, tables, past)?;
        let x = (x + attn)?;
        let mlp = x.apply(&self.post_attention_layernorm)?.apply(&self.mlp)?;
        Ok(((x + mlp)?, k, v))
    }
}

/// Keys and values of a shared prompt prefix, one `(k, v)` pair `[1, Hkv, P, Dh]` per layer.
#[derive(Debug, Clone)]
pub struct PrefixKv {
    len: usize,
    layers: Vec<(Tensor, Tensor)>,
}

impl PrefixKv {
    /// Number of prefix tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the prefix holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Keys and values of right-padded context segments (one per query) that continue the shared
/// prefix: one `(k, v)` pair `[Q, Hkv, Lmax, Dh]` per layer, plus each segment's real length.
#[derive(Debug, Clone)]
pub struct SegmentKv {
    lens: Vec<usize>,
    max_len: usize,
    layers: Vec<(Tensor, Tensor)>,
}

impl SegmentKv {
    /// Real token count of each segment.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }
}

/// A Qwen3 causal LM reduced to the reranker score `z_yes − z_no` of the last position.
#[derive(Debug, Clone)]
pub struct Qwen3Scorer {
    embed_tokens: Embedding,
    layers: Vec<Qwen3DecoderLayer>,
    norm: Qwen3RMSNorm,
    rotary: Qwen3RotaryEmbedding,
    /// `lm_head[yes] − lm_head[no]` in f32, shape `[hidden]`.
    score_weight: Tensor,
    dtype: DType,
}

impl Qwen3Scorer {
    /// Loads the model body from `vb` (HF names `model.…`). `score_weight` is
    /// `lm_head[yes] − lm_head[no]`, read by the caller from two rows only.
    pub fn load(cfg: &Config, vb: VarBuilder, score_weight: Tensor) -> Result<Self> {
        if let Err(msg) = cfg.validate() {
            candle_core::bail!("unsupported Qwen3 config: {msg}");
        }
        let vbm = vb.pp("model");
        let embed_tokens =
            candle_nn::embedding(cfg.vocab_size, cfg.hidden_size, vbm.pp("embed_tokens"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Qwen3DecoderLayer::load(cfg, vbm.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = Qwen3RMSNorm::load(cfg.hidden_size, cfg.rms_norm_eps, vbm.pp("norm"))?;
        let score_weight = score_weight.to_dtype(DType::F32)?.to_device(vb.device())?;
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            rotary: Qwen3RotaryEmbedding::new(cfg, vb.dtype(), vb.device())?,
            score_weight,
            dtype: vb.dtype(),
        })
    }

    /// Runs the shared prefix `ids` once (positions `0..P`) and keeps its keys and values.
    pub fn prefix(&self, ids: &[u32]) -> Result<PrefixKv> {
        if ids.is_empty() {
            return Ok(PrefixKv {
                len: 0,
                layers: Vec::new(),
            });
        }
        let (_, layers) = self.run(None, None, &[ids], true)?;
        Ok(PrefixKv {
            len: ids.len(),
            layers,
        })
    }

    /// Runs one context segment per query (e.g. the query's tokens) on top of `prefix` and keeps
    /// their keys and values, so that [`Qwen3Scorer::score_in_segments`] can reuse them for
    /// every document of the query.
    pub fn segments(&self, prefix: Option<&PrefixKv>, segs: &[&[u32]]) -> Result<SegmentKv> {
        let (_, layers) = self.run(prefix, None, segs, true)?;
        Ok(SegmentKv {
            lens: segs.iter().map(|s| s.len()).collect(),
            max_len: segs.iter().map(|s| s.len()).max().unwrap_or(0),
            layers,
        })
    }

    /// Scores a batch of token sequences that each continue `prefix` (or start from scratch when
    /// it is `None` or empty). Returns `z_yes − z_no` at each sequence's last token, in f32.
    pub fn score_batch(&self, prefix: Option<&PrefixKv>, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let (x, _) = self.run(prefix, None, seqs, false)?;
        self.score_last(&x, seqs)
    }

    /// Scores sequences that continue `prefix` and then segment `owner[b]` of `segs`.
    pub fn score_in_segments(
        &self,
        prefix: Option<&PrefixKv>,
        segs: &SegmentKv,
        owner: &[usize],
        seqs: &[&[u32]],
    ) -> Result<Vec<f32>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        if owner.len() != seqs.len() || owner.iter().any(|&o| o >= segs.lens.len()) {
            candle_core::bail!(
                "{} owners for {} sequences over {} segments",
                owner.len(),
                seqs.len(),
                segs.lens.len()
            );
        }
        let (x, _) = self.run(prefix, Some((segs, owner)), seqs, false)?;
        self.score_last(&x, seqs)
    }

    /// The decoder over right-padded `seqs` that continue `prefix` and optionally a segment
    /// each. Returns the hidden states `[B, L, H]` and, when `keep_kv`, each layer's new keys
    /// and values.
    fn run(
        &self,
        prefix: Option<&PrefixKv>,
        segments: Option<(&SegmentKv, &[usize])>,
        seqs: &[&[u32]],
        keep_kv: bool,
    ) -> Result<(Tensor, Vec<(Tensor, Tensor)>)> {
        let dev = self.score_weight.device();
        let prefix = prefix.filter(|p| !p.is_empty());
        let p = prefix.map_or(0, |p| p.len);
        if seqs.is_empty() || seqs.iter().any(|s| s.is_empty()) {
            candle_core::bail!("cannot run an empty batch or an empty token sequence");
        }
        let max_len = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        // Right padding: a causal mask keeps every real query away from the pads after it.
        let mut flat = Vec::with_capacity(seqs.len() * max_len);
        for s in seqs {
            flat.extend_from_slice(s);
            flat.extend(std::iter::repeat_n(0u32, max_len - s.len()));
        }
        let ids = Tensor::from_vec(flat, (seqs.len(), max_len), dev)?;
        let (mask, starts, owner) = match segments {
            Some((segs, owner)) => {
                let lens: Vec<usize> = owner.iter().map(|&o| segs.lens[o]).collect();
                let mask = segment_mask(p, segs.max_len, &lens, max_len, dev)?;
                let starts = lens.iter().map(|c| p + c).collect();
                let idx: Vec<u32> = owner.iter().map(|&o| o as u32).collect();
                (mask, starts, Some(Tensor::new(idx, dev)?))
            }
            None => (causal_mask(max_len, p + max_len, dev)?, vec![p], None),
        };
        let (cos, sin) = self.rotary.cos_sin_at(&starts, max_len, self.dtype, dev)?;
        let mut x = ids.apply(&self.embed_tokens)?;
        let mut kv = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let mut past = Vec::with_capacity(2);
            if let Some(p) = prefix {
                past.push(p.layers[i].clone());
            }
            if let (Some((segs, _)), Some(owner)) = (segments, &owner) {
                let (k, v) = &segs.layers[i];
                past.push((k.index_select(owner, 0)?, v.index_select(owner, 0)?));
            }
            let (y, k, v) = layer.forward(&x, (&cos, &sin, &mask), &past)?;
            if keep_kv {
                kv.push((k, v));
            }
            x = y;
        }
        Ok((x, kv))
    }

    /// `z_yes − z_no` at each sequence's last real position of the hidden states `x`.
    fn score_last(&self, x: &Tensor, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        let dev = self.score_weight.device();
        let (_, max_len, hidden) = x.dims3()?;
        let last: Vec<u32> = seqs
            .iter()
            .enumerate()
            .map(|(b, s)| (b * max_len + s.len() - 1) as u32)
            .collect();
        let last = Tensor::from_vec(last, seqs.len(), dev)?;
        let h = x
            .reshape((seqs.len() * max_len, hidden))?
            .index_select(&last, 0)?
            .apply(&self.norm)?
            .to_dtype(DType::F32)?;
        h.broadcast_mul(&self.score_weight)?
            .sum(1)?
            .to_vec1::<f32>()
    }
}
