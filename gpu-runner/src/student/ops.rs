//! The hot paths of the student's forward pass, each a single function that picks its
//! implementation by device:
//!
//! * on CUDA (feature `cuda`, unless [`crate::kernels::set_enabled`] turned them off) the fused
//!   kernels of [`crate::kernels`], with forward and backward, in training and inference;
//! * elsewhere, in training, differentiable compositions of candle ops ([`composed`]): candle's
//!   own fused `softmax_last_dim` and `layer_norm` record no backward op, so gradients would
//!   silently stop; in inference candle's fused ops, which need no graph.

use std::cell::RefCell;

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Whether a forward pass trains (dropout on, differentiable ops) or evaluates.
#[derive(Clone, Copy)]
pub enum Mode<'a> {
    /// Inference: no dropout, fused ops.
    Eval,
    /// Training: differentiable ops; dropout drawn from the given source, if any.
    Train(Option<&'a DropoutRng>),
}

impl Mode<'_> {
    /// True in training.
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train(_))
    }
}

/// A seedable source of dropout masks.
///
/// On CPU the masks come from a [`StdRng`] on the host; on CUDA from the device generator, which
/// [`DropoutRng::reseed`] seeds too. The trainer reseeds at every optimizer step from
/// `(seed, step)`, so a resumed run draws the same masks as an uninterrupted one.
pub struct DropoutRng {
    rng: RefCell<StdRng>,
}

impl DropoutRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        DropoutRng {
            rng: RefCell::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// Reseeds the host generator and, on CUDA, the device generator.
    pub fn reseed(&self, seed: u64, device: &Device) -> candle_core::Result<()> {
        *self.rng.borrow_mut() = StdRng::seed_from_u64(seed);
        if !device.is_cpu() {
            device.set_seed(seed)?;
        }
        Ok(())
    }

    /// A fresh seed for one fused dropout mask, drawn from the host generator (so it follows
    /// [`DropoutRng::reseed`]).
    #[cfg(feature = "cuda")]
    pub fn next_seed(&self) -> u64 {
        self.rng.borrow_mut().random::<u64>()
    }

    fn keep_mask(&self, xs: &Tensor, p: f32) -> candle_core::Result<Tensor> {
        let scale = 1.0 / (1.0 - p as f64);
        let device = xs.device();
        let uniform = if device.is_cpu() {
            let n = xs.elem_count();
            let mut rng = self.rng.borrow_mut();
            let values: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
            Tensor::from_vec(values, xs.shape(), device)?
        } else {
            Tensor::rand(0f32, 1f32, xs.shape(), device)?
        };
        uniform.ge(p as f64)?.to_dtype(xs.dtype())? * scale
    }
}

/// Inverted dropout with probability `p` in training; the identity otherwise.
pub fn dropout(xs: &Tensor, p: f64, mode: Mode) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fused(xs) {
        let (p, seed) = dropout_draw(p, mode);
        return if p > 0.0 {
            crate::kernels::dropout(xs, p, seed)
        } else {
            Ok(xs.clone())
        };
    }
    match mode {
        Mode::Train(Some(rng)) if p > 0.0 => xs * rng.keep_mask(xs, p as f32)?,
        _ => Ok(xs.clone()),
    }
}

/// True when the fused CUDA kernel of an op applies to `xs` (on CUDA, kernels enabled).
#[cfg(feature = "cuda")]
fn fused(xs: &Tensor) -> bool {
    crate::kernels::applies(xs)
}

/// The dropout probability and mask seed of a fused kernel: `(0, 0)` unless training with a
/// dropout source.
#[cfg(feature = "cuda")]
fn dropout_draw(p: f64, mode: Mode) -> (f64, u64) {
    match mode {
        Mode::Train(Some(rng)) if p > 0.0 => (p, rng.next_seed()),
        _ => (0.0, 0),
    }
}

/// LayerNorm over the last dimension, computed in f32 (as under autocast) and returned in f32.
pub fn layer_norm(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    mode: Mode,
) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fused(xs) {
        return crate::kernels::layer_norm(xs, weight, bias, eps);
    }
    let xs = xs.to_dtype(DType::F32)?;
    if !mode.is_train() {
        return candle_nn::ops::layer_norm(&xs.contiguous()?, weight, bias, eps as f32);
    }
    composed::layer_norm(&xs, weight, bias, eps)
}

/// Softmax over the last dimension of attention scores, in f32.
pub fn attention_softmax(scores: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
    let scores = scores.to_dtype(DType::F32)?;
    if !mode.is_train() {
        return candle_nn::ops::softmax_last_dim(&scores.contiguous()?);
    }
    composed::softmax(&scores)
}

/// Attention probabilities `dropout(softmax(scores · scale + mask))` in `dtype`, from the raw
/// `QKᵀ` scores `[B, H, L, L]` (compute dtype) and the additive f32 key mask `[B, L]`.
pub fn attention_probs(
    scores: &Tensor,
    mask: &Tensor,
    scale: f64,
    p: f64,
    mode: Mode,
    dtype: DType,
) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fused(scores) {
        let (p, seed) = dropout_draw(p, mode);
        return crate::kernels::attention_probs(&scores.to_dtype(dtype)?, mask, scale, p, seed);
    }
    let (b, l) = mask.dims2()?;
    let scores = (scores * scale)?.to_dtype(DType::F32)?;
    let probs = attention_softmax(&scores.broadcast_add(&mask.reshape((b, 1, 1, l))?)?, mode)?;
    dropout(&probs, p, mode)?.to_dtype(dtype)
}

/// `GELU_erf(xs + bias)`, the exact (not tanh-approximated) GELU of HF's `"gelu"`. Composed:
/// f32; fused: in `xs`'s dtype.
pub fn bias_gelu(xs: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fused(xs) {
        return crate::kernels::bias_gelu(xs, bias);
    }
    xs.to_dtype(DType::F32)?.broadcast_add(bias)?.gelu_erf()
}

/// `residual + dropout(xs + bias)` in f32: a dense layer's bias, dropout and residual add.
pub fn bias_dropout_residual(
    xs: &Tensor,
    bias: &Tensor,
    residual: &Tensor,
    p: f64,
    mode: Mode,
) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fused(xs) {
        let (p, seed) = dropout_draw(p, mode);
        return crate::kernels::bias_dropout_residual(xs, bias, residual, p, seed);
    }
    let ys = dropout(&xs.to_dtype(DType::F32)?.broadcast_add(bias)?, p, mode)?;
    ys + residual
}

/// `(xs + bias)` of shape `[B·L, H·Dh]` (`batch` = B) split into heads `[B, H, L, Dh]`, in
/// `dtype`.
pub fn head_split_bias(
    xs: &Tensor,
    bias: &Tensor,
    batch: usize,
    heads: usize,
    dtype: DType,
) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fused(xs) {
        return crate::kernels::head_split_bias(&xs.to_dtype(dtype)?, bias, batch, heads);
    }
    let (rows, d) = xs.dims2()?;
    xs.to_dtype(DType::F32)?
        .broadcast_add(bias)?
        .reshape((batch, rows / batch.max(1), heads, d / heads))?
        .transpose(1, 2)?
        .contiguous()?
        .to_dtype(dtype)
}

/// Heads `[B, H, L, Dh]` merged back into tokens `[B·L, H·Dh]`.
pub fn head_merge(xs: &Tensor) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    if fused(xs) {
        return crate::kernels::head_merge(xs);
    }
    let (b, h, l, dh) = xs.dims4()?;
    xs.transpose(1, 2)?.reshape((b * l, h * dh))
}

/// The composed, differentiable versions of the ops (the CPU path, and the reference the fused
/// kernels are checked against).
pub mod composed {
    use candle_core::{Tensor, D};

    /// LayerNorm over the last dimension from elementary ops.
    pub fn layer_norm(
        xs: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        eps: f64,
    ) -> candle_core::Result<Tensor> {
        let mean = xs.mean_keepdim(D::Minus1)?;
        let centered = xs.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centered.broadcast_div(&(var + eps)?.sqrt()?)?;
        normed.broadcast_mul(weight)?.broadcast_add(bias)
    }

    /// Softmax over the last dimension from elementary ops.
    pub fn softmax(scores: &Tensor) -> candle_core::Result<Tensor> {
        let max = scores.max_keepdim(D::Minus1)?.detach();
        let exp = scores.broadcast_sub(&max)?.exp()?;
        exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differentiable_ops_match_fused_ones() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (3, 5, 8), &dev)?;
        let w = Tensor::randn(1f32, 0.1, 8, &dev)?;
        let b = Tensor::randn(0f32, 0.1, 8, &dev)?;
        let train = Mode::Train(None);
        let diff =
            (layer_norm(&x, &w, &b, 1e-5, train)? - layer_norm(&x, &w, &b, 1e-5, Mode::Eval)?)?;
        assert!(diff.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
        let diff = (attention_softmax(&x, train)? - attention_softmax(&x, Mode::Eval)?)?;
        assert!(diff.abs()?.max_all()?.to_scalar::<f32>()? < 1e-6);
        Ok(())
    }

    #[test]
    fn dropout_is_seeded_and_scaled() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::ones((4, 1000), DType::F32, &dev)?;
        let rng = DropoutRng::new(7);
        let a = dropout(&x, 0.1, Mode::Train(Some(&rng)))?;
        rng.reseed(7, &dev)?;
        let b = dropout(&x, 0.1, Mode::Train(Some(&rng)))?;
        assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
        let kept = a
            .ne(0f32)?
            .to_dtype(DType::F32)?
            .mean_all()?
            .to_scalar::<f32>()?;
        assert!((kept - 0.9).abs() < 0.03, "kept {kept}");
        let max = a.max_all()?.to_scalar::<f32>()?;
        assert!((max - 1.0 / 0.9).abs() < 1e-6);
        let same = dropout(&x, 0.1, Mode::Eval)?;
        assert_eq!(same.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
        Ok(())
    }
}
