//! The packed (padding-free) bf16 inference kernels of `kernels/infer.cu` as candle custom ops.
//! No backward: [`crate::student::xlm_roberta`] uses them only in evaluation, on CUDA, in bf16.
//!
//! A packed batch is one `[T, hidden]` matrix of the real tokens of all its sequences, sequence
//! `b` owning rows `cu[b]..cu[b + 1]` (`cu`: u32 offsets, `B + 1` of them).

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::cuda_backend::cudarc::driver::LaunchConfig;
use candle_core::cuda_backend::CudaStorageSlice as S;
use candle_core::{
    bail, CpuStorage, CudaStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor,
};

use super::{
    cpu_unsupported, launch, range, row_blocks_cfg, rows_and_width, rows_cfg, storage,
    INFER_MODULE, INFER_PTX,
};

/// Longest sequence the attention kernel holds in shared memory (`ATT_MAX_L`); the host's
/// packing refuses longer batches with the same bound.
pub use crate::student::xlm_roberta::PACKED_MAX_LEN as MAX_LEN;
/// Widest head the attention kernel takes (and a multiple of 8).
pub const MAX_HEAD_DIM: usize = 64;
/// Widest row the LayerNorm kernels hold in registers.
const MAX_WIDTH: usize = 1024;
/// Warps per attention block (`ATT_WARPS`): each takes 16 query rows at a time.
const ATTENTION_WARPS: u32 = 4;

static PACKED: AtomicBool = AtomicBool::new(true);

/// Whether bf16 inference on CUDA takes the packed path (default: yes).
pub fn packed_enabled() -> bool {
    PACKED.load(Ordering::Relaxed)
}

/// Turns the packed inference path on or off (checks and benchmarks compare both).
pub fn set_packed(on: bool) {
    PACKED.store(on, Ordering::Relaxed);
}

/// Whether the packed kernels take a model of this shape.
pub fn supports(hidden: usize, heads: usize, intermediate: usize) -> bool {
    hidden <= MAX_WIDTH && head_dim(hidden, heads).is_some() && intermediate.is_multiple_of(8)
}

/// The width of one of `heads` heads of `hidden`, when the attention kernel takes it: they
/// divide evenly, into at most [`MAX_HEAD_DIM`], a multiple of 8 (16-byte loads).
fn head_dim(hidden: usize, heads: usize) -> Option<usize> {
    let dim = hidden / heads.max(1);
    (dim * heads == hidden && dim <= MAX_HEAD_DIM && dim.is_multiple_of(8)).then_some(dim)
}

/// Whether a view starts at a multiple of `elements` (with candle's aligned allocations, the
/// kernels' 16-byte loads then stay aligned).
fn aligned(layout: &Layout, elements: usize, what: &str) -> Result<bool> {
    Ok(range(layout, what)?.start.is_multiple_of(elements))
}

fn bf16_input<'a>(
    s: &'a CudaStorage,
    l: &Layout,
    what: &str,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, half::bf16>> {
    match &s.slice {
        S::BF16(x) => Ok(x.slice(range(l, what)?)),
        _ => bail!("packed inference: {what} must be bf16"),
    }
}

fn check_width(d: usize) -> Result<()> {
    if d > MAX_WIDTH {
        bail!("packed LayerNorm: rows of {d} > {MAX_WIDTH}");
    }
    Ok(())
}

/// `LN(y + bias + residual)` over rows: `y`, `residual` bf16 `[T, d]`, `params` f32
/// `[bias | gamma | beta]` (`3d`); bf16 out.
struct BiasResidualLayerNorm {
    eps: f32,
}

impl CustomOp3 for BiasResidualLayerNorm {
    fn name(&self) -> &'static str {
        "packed-bias-residual-layer-norm"
    }

    cpu_unsupported!(3);

    fn cuda_fwd(
        &self,
        y: &CudaStorage,
        yl: &Layout,
        res: &CudaStorage,
        rl: &Layout,
        params: &CudaStorage,
        pl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &y.device;
        let (n, d) = rows_and_width(yl);
        check_width(d)?;
        if rl.shape() != yl.shape() || pl.shape().elem_count() != 3 * d {
            bail!(
                "packed LayerNorm: residual {:?} / params {:?} do not fit y {:?}",
                rl.shape(),
                pl.shape(),
                yl.shape()
            );
        }
        let ys = bf16_input(y, yl, "y")?;
        let rs = bf16_input(res, rl, "residual")?;
        let ps = params.as_cuda_slice::<f32>()?.slice(range(pl, "params")?);
        let vec = d.is_multiple_of(256)
            && aligned(yl, 8, "y")?
            && aligned(rl, 8, "residual")?
            && aligned(pl, 4, "params")?;
        let mut out = unsafe { dev.alloc::<half::bf16>(n * d)? };
        let (n32, d32, vec32) = (n as i32, d as i32, i32::from(vec));
        launch!(in INFER_MODULE, INFER_PTX; dev, "bias_residual_ln_bf16", rows_cfg(n);
            &ys, &rs, &ps, &mut out, &n32, &d32, &self.eps, &vec32);
        Ok((storage(S::BF16(out), dev), yl.shape().clone()))
    }
}

/// `LN(y + bias + residual)` in bf16 for the packed forward; `params` is `[bias | gamma | beta]`.
pub fn bias_residual_layer_norm(
    y: &Tensor,
    residual: &Tensor,
    params: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    y.apply_op3_no_bwd(residual, params, &BiasResidualLayerNorm { eps: eps as f32 })
}

/// `LN(x)` of f32 rows into bf16; `params` f32 `[gamma | beta]`.
struct LayerNormToBf16 {
    eps: f32,
}

impl CustomOp2 for LayerNormToBf16 {
    fn name(&self) -> &'static str {
        "packed-layer-norm"
    }

    cpu_unsupported!(2);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        params: &CudaStorage,
        pl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let (n, d) = rows_and_width(xl);
        check_width(d)?;
        if pl.shape().elem_count() != 2 * d {
            bail!(
                "packed LayerNorm: params {:?} do not fit rows of {d}",
                pl.shape()
            );
        }
        let xs = x.as_cuda_slice::<f32>()?.slice(range(xl, "x")?);
        let ps = params.as_cuda_slice::<f32>()?.slice(range(pl, "params")?);
        let mut out = unsafe { dev.alloc::<half::bf16>(n * d)? };
        let (n32, d32) = (n as i32, d as i32);
        launch!(in INFER_MODULE, INFER_PTX; dev, "ln_f32_to_bf16", rows_cfg(n);
            &xs, &ps, &mut out, &n32, &d32, &self.eps);
        Ok((storage(S::BF16(out), dev), xl.shape().clone()))
    }
}

/// `LN(x)` of f32 rows, written as bf16; `params` is `[gamma | beta]`.
pub fn layer_norm_to_bf16(x: &Tensor, params: &Tensor, eps: f64) -> Result<Tensor> {
    x.apply_op2_no_bwd(params, &LayerNormToBf16 { eps: eps as f32 })
}

/// `gelu(x + bias)` (erf form) of bf16 rows of width divisible by 8, 16 bytes per load.
struct BiasGelu;

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "packed-bias-gelu"
    }

    cpu_unsupported!(2);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        bias: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let (n, d) = rows_and_width(xl);
        if !d.is_multiple_of(8) || bl.shape().elem_count() != d {
            bail!("packed bias+GELU: rows of {d} with bias {:?}", bl.shape());
        }
        // The kernel reads and writes 8 elements (16 bytes) at a time.
        if !aligned(xl, 8, "x")? || !aligned(bl, 4, "bias")? {
            bail!("packed bias+GELU: x and bias must start 16-byte aligned");
        }
        let xs = bf16_input(x, xl, "x")?;
        let bs = bias.as_cuda_slice::<f32>()?.slice(range(bl, "bias")?);
        let mut out = unsafe { dev.alloc::<half::bf16>(n * d)? };
        let (rows, d32) = (n as i64, d as i32);
        launch!(in INFER_MODULE, INFER_PTX; dev, "bias_gelu_bf16x8", row_blocks_cfg(n);
            &xs, &bs, &mut out, &rows, &d32);
        Ok((storage(S::BF16(out), dev), xl.shape().clone()))
    }
}

/// `gelu(x + bias)` of bf16 rows `[T, d]` (`d % 8 == 0`), `bias` f32 `[d]`; no backward.
pub fn bias_gelu(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.apply_op2_no_bwd(bias, &BiasGelu)
}

/// Self-attention of packed sequences from the fused projection `qkv` `[T, 3·hidden]` (bf16,
/// without its bias), its f32 `bias` `[3·hidden]` and the offsets `cu` (u32, `B + 1`).
struct PackedAttention {
    heads: usize,
    scale: f32,
    /// The batch's longest sequence (sizes the shared memory).
    max_len: usize,
}

/// Dynamic shared memory of one attention block (`infer.cu`): the keys, row-major with rows of
/// 36 words, and the values transposed, columns of `lpad / 2 + 4` words, as bf16 pairs, for
/// `lpad` = `max_len` rounded up to 16.
fn attention_shared_bytes(max_len: usize) -> u32 {
    let lpad = max_len.div_ceil(16) * 16;
    let words = lpad * 36 + MAX_HEAD_DIM * (lpad / 2 + 4);
    (4 * words) as u32
}

impl CustomOp3 for PackedAttention {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    cpu_unsupported!(3);

    fn cuda_fwd(
        &self,
        qkv: &CudaStorage,
        ql: &Layout,
        bias: &CudaStorage,
        bl: &Layout,
        cu: &CudaStorage,
        cl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &qkv.device;
        let (t, width) = rows_and_width(ql);
        let hidden = width / 3;
        let dims = head_dim(hidden, self.heads);
        let Some(dim) = dims.filter(|_| {
            width == 3 * hidden && bl.shape().elem_count() == width && self.max_len <= MAX_LEN
        }) else {
            bail!(
                "packed attention: qkv {:?}, bias {:?}, {} heads, longest {} not supported",
                ql.shape(),
                bl.shape(),
                self.heads,
                self.max_len
            );
        };
        if !aligned(ql, 8, "qkv")? || !aligned(bl, 4, "bias")? {
            bail!("packed attention: qkv and bias must start 16-byte aligned");
        }
        let sequences = cl.shape().elem_count().saturating_sub(1);
        let qs = bf16_input(qkv, ql, "qkv")?;
        let bs = bias.as_cuda_slice::<f32>()?.slice(range(bl, "bias")?);
        let cs = cu.as_cuda_slice::<u32>()?.slice(range(cl, "offsets")?);
        let mut out = unsafe { dev.alloc::<half::bf16>(t * hidden)? };
        let cfg = LaunchConfig {
            grid_dim: (sequences.max(1) as u32, self.heads as u32, 1),
            block_dim: (32 * ATTENTION_WARPS, 1, 1),
            shared_mem_bytes: attention_shared_bytes(self.max_len),
        };
        let (h32, dh32) = (self.heads as i32, dim as i32);
        let lmax = self.max_len as i32;
        if sequences > 0 && self.max_len > 0 {
            launch!(in INFER_MODULE, INFER_PTX; dev, "attention_packed_bf16", cfg;
                &qs, &bs, &cs, &mut out, &h32, &dh32, &self.scale, &lmax);
        }
        Ok((storage(S::BF16(out), dev), Shape::from((t, hidden))))
    }
}

/// `softmax(q kᵀ / √dh) v` per packed sequence and head; `[T, hidden]` bf16 out. `max_len` is
/// the longest sequence, at most [`MAX_LEN`] (checked).
pub fn packed_attention(
    qkv: &Tensor,
    bias: &Tensor,
    cu: &Tensor,
    heads: usize,
    max_len: usize,
) -> Result<Tensor> {
    let hidden = qkv.dim(1)? / 3;
    let scale = 1.0 / ((hidden / heads.max(1)) as f32).sqrt();
    qkv.apply_op3_no_bwd(
        bias,
        cu,
        &PackedAttention {
            heads,
            scale,
            max_len,
        },
    )
}
