//! The teacher's hot-path tensor ops: RMSNorm, grouped-query attention and its masks.
//!
//! They are free functions so that fused CUDA kernels can replace them one at a time. On CUDA,
//! [`rms_norm`] uses candle's fused kernel (one launch instead of six, forward only); on CPU it
//! keeps the composed form that matches transformers to the last f32 bit.

use candle_core::{DType, Device, Result, Tensor, D};

/// RMSNorm as in transformers: normalise in f32, cast back, then multiply by the weight.
///
/// `y = w · ((x_f32 · rsqrt(mean(x_f32²) + eps)).to(dtype))` over the last dimension. On CUDA
/// the fused kernel computes the same in f32 and rounds once at the end (within bf16 rounding of
/// the composed form).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if x.device().is_cuda() {
        return candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps as f32);
    }
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let mean_sq = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = xf.broadcast_div(&(mean_sq + eps)?.sqrt()?)?;
    normed.to_dtype(dtype)?.broadcast_mul(weight)
}

/// Causal grouped-query attention with an optional longer key range.
///
/// `q`: `[B, H, L, Dh]` (contiguous); `k`, `v`: `[B, Hkv, S, Dh]` with `S ≥ L`, where the first
/// `S − L` keys come before the queries; `mask` is an additive f32 mask that broadcasts to
/// `[B, Hkv, H / Hkv, L, S]`: [`causal_mask`] `[L, S]` or [`segment_mask`] `[B, 1, 1, L, S]`.
/// Query head `h` uses key/value head `h / (H / Hkv)` (transformers' `repeat_kv`). Scores are
/// scaled in the activation dtype, the softmax runs in f32 and is cast back. Returns
/// `[B, H, L, Dh]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, h, l, dh) = q.dims4()?;
    let (_, hkv, s, _) = k.dims4()?;
    let groups = h / hkv;
    let dtype = q.dtype();
    let q = q.reshape((b, hkv, groups * l, dh))?;
    let scores = (q.matmul(&k.contiguous()?.t()?)? * scale)?;
    let scores = scores
        .to_dtype(DType::F32)?
        .reshape((b, hkv, groups, l, s))?
        .broadcast_add(mask)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?
        .to_dtype(dtype)?
        .reshape((b, hkv, groups * l, s))?;
    probs.matmul(&v.contiguous()?)?.reshape((b, h, l, dh))
}

/// Additive f32 mask `[L, S]`: query `i` sees keys `0 ..= S − L + i`.
pub fn causal_mask(l: usize, s: usize, device: &Device) -> Result<Tensor> {
    let offset = s - l;
    let data: Vec<f32> = (0..l)
        .flat_map(|i| (0..s).map(move |j| visible(j <= offset + i)))
        .collect();
    Tensor::from_vec(data, (l, s), device)
}

/// Additive f32 mask `[B, 1, 1, L, S]` for sequences that continue a shared prefix of `prefix`
/// keys and then a right-padded context segment of `context_max` keys, of which sequence `b`
/// may see only the first `context_lens[b]`; its own `L` keys are causal.
pub fn segment_mask(
    prefix: usize,
    context_max: usize,
    context_lens: &[usize],
    l: usize,
    device: &Device,
) -> Result<Tensor> {
    let s = prefix + context_max + l;
    let mut data = Vec::with_capacity(context_lens.len() * l * s);
    for &ctx in context_lens {
        for i in 0..l {
            data.extend((0..s).map(|j| {
                visible(if j < prefix {
                    true
                } else if j < prefix + context_max {
                    j - prefix < ctx
                } else {
                    j - prefix - context_max <= i
                })
            }));
        }
    }
    Tensor::from_vec(data, (context_lens.len(), 1, 1, l, s), device)
}

fn visible(yes: bool) -> f32 {
    if yes {
        0.0
    } else {
        f32::NEG_INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_mask_hides_context_padding_and_the_future() {
        // prefix 1, context of max 2 (sequence 0 sees 1 of them), own length 2.
        let m = segment_mask(1, 2, &[1, 2], 2, &Device::Cpu).unwrap();
        assert_eq!(m.dims(), [2, 1, 1, 2, 5]);
        let rows: Vec<Vec<f32>> = m.reshape((4, 5)).unwrap().to_vec2().unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(rows[0], [0.0, 0.0, inf, 0.0, inf]);
        assert_eq!(rows[1], [0.0, 0.0, inf, 0.0, 0.0]);
        assert_eq!(rows[2], [0.0, 0.0, 0.0, 0.0, inf]);
        assert_eq!(rows[3], [0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn causal_mask_offsets_by_the_prefix() {
        let rows: Vec<Vec<f32>> = causal_mask(2, 3, &Device::Cpu).unwrap().to_vec2().unwrap();
        assert_eq!(rows[0], [0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(rows[1], [0.0, 0.0, 0.0]);
    }
}
