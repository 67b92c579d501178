//! Attention probabilities (masked softmax with dropout) and the head split / merge of the
//! padded attention, forward and backward.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr};
use candle_core::cuda_backend::{CudaDevice, CudaStorageSlice as S};
use candle_core::{
    bail, CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape,
    Tensor,
};
use half::bf16;

use super::super::{
    cpu_unsupported, launch, range, row_blocks_cfg, rows_and_width, rows_cfg, storage, suffix,
};

use super::keep;
use super::norm::column_sum;

// ------------------------------------------------------------------------------- attention

/// `dropout(softmax(scores · scale + mask))` over the last dimension; scores `[B, H, Lq, Lk]`,
/// mask `[B, Lk]` additive f32.
#[derive(Clone, Copy)]
struct AttentionProbs {
    scale: f32,
    p: f32,
    seed: u64,
}

impl AttentionProbs {
    fn launch<T: DeviceRepr>(
        &self,
        name: &str,
        dev: &CudaDevice,
        s: (&CudaSlice<T>, &Layout),
        mask: (&CudaStorage, &Layout),
        dout: Option<(&CudaSlice<T>, &Layout)>,
    ) -> Result<CudaSlice<T>> {
        let (sl, lay) = s;
        let dims = lay.dims();
        let [_, heads, lq, lk] = dims else {
            bail!("attention scores must be [B, H, Lq, Lk], got {dims:?}")
        };
        let rows = lay.shape().elem_count() / lk;
        let ss = sl.slice(range(lay, "scores")?);
        let ms = mask.0.as_cuda_slice::<f32>()?.slice(range(mask.1, "mask")?);
        let mut out = unsafe { dev.alloc::<T>(rows * lk)? };
        let (p, keep_scale) = keep(self.p);
        let ints = [rows as i32, *lq as i32, *lk as i32, *heads as i32];
        let [rows32, lq32, lk32, h32] = ints;
        match dout {
            None => launch!(dev, name, rows_cfg(rows);
                &ss, &ms, &mut out, &rows32, &lq32, &lk32, &h32, &self.scale, &p, &keep_scale, &self.seed),
            Some((ds, dl)) => {
                let dv = ds.slice(range(dl, "dprobs")?);
                launch!(dev, name, rows_cfg(rows);
                    &ss, &ms, &dv, &mut out, &rows32, &lq32, &lk32, &h32, &self.scale, &p, &keep_scale, &self.seed)
            }
        }
        Ok(out)
    }
}

impl CustomOp2 for AttentionProbs {
    fn name(&self) -> &'static str {
        "fused-attention-probs"
    }

    cpu_unsupported!(2);

    fn cuda_fwd(
        &self,
        s: &CudaStorage,
        sl: &Layout,
        m: &CudaStorage,
        ml: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &s.device;
        let name = format!("attn_probs_fwd_{}", suffix(s.dtype())?);
        let slice = match &s.slice {
            S::F32(x) => S::F32(self.launch(&name, dev, (x, sl), (m, ml), None)?),
            S::BF16(x) => S::BF16(self.launch(&name, dev, (x, sl), (m, ml), None)?),
            _ => bail!("attention scores must be f32 or bf16"),
        };
        Ok((storage(slice, dev), sl.shape().clone()))
    }

    fn bwd(
        &self,
        scores: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        dprobs: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ds = scores.apply_op3_no_bwd(mask, &dprobs.contiguous()?, &AttentionProbsBwd(*self))?;
        Ok((Some(ds), None))
    }
}

struct AttentionProbsBwd(AttentionProbs);

impl CustomOp3 for AttentionProbsBwd {
    fn name(&self) -> &'static str {
        "fused-attention-probs-bwd"
    }

    cpu_unsupported!(3);

    fn cuda_fwd(
        &self,
        s: &CudaStorage,
        sl: &Layout,
        m: &CudaStorage,
        ml: &Layout,
        d: &CudaStorage,
        dl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &s.device;
        let name = format!("attn_probs_bwd_{}", suffix(s.dtype())?);
        let slice = match (&s.slice, &d.slice) {
            (S::F32(x), S::F32(g)) => {
                S::F32(self.0.launch(&name, dev, (x, sl), (m, ml), Some((g, dl)))?)
            }
            (S::BF16(x), S::BF16(g)) => {
                S::BF16(self.0.launch(&name, dev, (x, sl), (m, ml), Some((g, dl)))?)
            }
            _ => bail!("attention scores and their gradient must share a float dtype"),
        };
        Ok((storage(slice, dev), sl.shape().clone()))
    }
}

/// `dropout(softmax(scores · scale + mask), p)` with `scores` `[B, H, Lq, Lk]` (f32 or bf16, the
/// output's dtype) and an additive f32 `mask` `[B, Lk]`. `p = 0` disables dropout.
pub fn attention_probs(
    scores: &Tensor,
    mask: &Tensor,
    scale: f64,
    p: f64,
    seed: u64,
) -> Result<Tensor> {
    let op = AttentionProbs {
        scale: scale as f32,
        p: p as f32,
        seed,
    };
    scores
        .contiguous()?
        .apply_op2(&mask.to_dtype(DType::F32)?.contiguous()?, op)
}

// ------------------------------------------------------------------------- attention heads

/// `[B·L, H·Dh]` (+ bias) → `[B, H, L, Dh]` (split) and back (merge).
#[derive(Clone, Copy)]
struct Heads {
    heads: usize,
    batch: usize,
}

impl Heads {
    /// `(b, l, h, dh)` of the token side `[B·L, D]`.
    fn dims(&self, rows: usize, d: usize) -> Result<[i32; 4]> {
        if self.heads == 0
            || !d.is_multiple_of(self.heads)
            || self.batch == 0
            || !rows.is_multiple_of(self.batch)
        {
            bail!(
                "attention heads: [{rows}, {d}] does not split into {} sequences of {} heads",
                self.batch,
                self.heads
            );
        }
        let dims = [self.batch, rows / self.batch, self.heads, d / self.heads];
        Ok(dims.map(|x| x as i32))
    }
}

/// Splits `x` (`[B·L, D]`) into heads, adding `bias` when given.
fn head_split_launch<T: DeviceRepr>(
    heads: Heads,
    name: &str,
    dev: &CudaDevice,
    x: (&CudaSlice<T>, &Layout),
    bias: Option<(&CudaStorage, &Layout)>,
) -> Result<(CudaSlice<T>, Shape)> {
    let (rows, d) = rows_and_width(x.1);
    let [b, l, h, dh] = heads.dims(rows, d)?;
    let xs = x.0.slice(range(x.1, "x")?);
    let mut out = unsafe { dev.alloc::<T>(rows * d)? };
    let cfg = row_blocks_cfg(rows);
    match bias {
        Some((bs, bl)) => {
            let bv = bs.as_cuda_slice::<f32>()?.slice(range(bl, "bias")?);
            launch!(dev, name, cfg; &xs, &bv, &mut out, &b, &l, &h, &dh);
        }
        None => {
            let null = 0u64;
            launch!(dev, name, cfg; &xs, &null, &mut out, &b, &l, &h, &dh);
        }
    }
    let shape = Shape::from((b as usize, h as usize, l as usize, dh as usize));
    Ok((out, shape))
}

/// Merges `x` (`[B, H, L, Dh]`) into `[B·L, H·Dh]`.
fn head_merge_launch<T: DeviceRepr>(
    name: &str,
    dev: &CudaDevice,
    x: (&CudaSlice<T>, &Layout),
) -> Result<(CudaSlice<T>, Shape)> {
    let dims = x.1.dims();
    let [b, h, l, dh] = dims else {
        bail!("attention heads: expected [B, H, L, Dh], got {dims:?}")
    };
    let (rows, d) = (b * l, h * dh);
    let ints = [*b as i32, *l as i32, *h as i32, *dh as i32];
    let [b32, l32, h32, dh32] = ints;
    let xs = x.0.slice(range(x.1, "x")?);
    let mut out = unsafe { dev.alloc::<T>(rows * d)? };
    launch!(dev, name, row_blocks_cfg(rows); &xs, &mut out, &b32, &l32, &h32, &dh32);
    Ok((out, Shape::from((rows, d))))
}

/// Dispatches a heads kernel over the two float dtypes.
fn heads_fwd(
    x: &CudaStorage,
    run: impl Fn(&str) -> Result<String>,
    f32_case: impl FnOnce(&str, &CudaSlice<f32>) -> Result<(CudaSlice<f32>, Shape)>,
    bf16_case: impl FnOnce(&str, &CudaSlice<bf16>) -> Result<(CudaSlice<bf16>, Shape)>,
) -> Result<(CudaStorage, Shape)> {
    let name = run(suffix(x.dtype())?)?;
    let (slice, shape) = match &x.slice {
        S::F32(s) => {
            let (o, sh) = f32_case(&name, s)?;
            (S::F32(o), sh)
        }
        S::BF16(s) => {
            let (o, sh) = bf16_case(&name, s)?;
            (S::BF16(o), sh)
        }
        _ => bail!("attention heads take f32 or bf16"),
    };
    Ok((storage(slice, &x.device), shape))
}

struct HeadSplitBias(Heads);

impl CustomOp2 for HeadSplitBias {
    fn name(&self) -> &'static str {
        "fused-head-split-bias"
    }

    cpu_unsupported!(2);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        heads_fwd(
            x,
            |sfx| Ok(format!("head_split_bias_{sfx}")),
            |n, s| head_split_launch(self.0, n, dev, (s, xl), Some((b, bl))),
            |n, s| head_split_launch(self.0, n, dev, (s, xl), Some((b, bl))),
        )
    }

    fn bwd(
        &self,
        _x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = dy.contiguous()?.apply_op1_no_bwd(&HeadMerge)?;
        let db = column_sum(&dx)?.reshape(bias.shape())?;
        Ok((Some(dx), Some(db)))
    }
}

/// `[B, H, L, Dh]` → `[B·L, H·Dh]`; its backward splits again.
struct HeadMerge;

impl CustomOp1 for HeadMerge {
    fn name(&self) -> &'static str {
        "fused-head-merge"
    }

    cpu_unsupported!(1);

    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        heads_fwd(
            x,
            |sfx| Ok(format!("head_merge_{sfx}")),
            |n, s| head_merge_launch(n, dev, (s, xl)),
            |n, s| head_merge_launch(n, dev, (s, xl)),
        )
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (batch, heads) = (x.dim(0)?, x.dim(1)?);
        let split = HeadSplit(Heads { heads, batch });
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&split)?))
    }
}

/// `[B·L, H·Dh]` → `[B, H, L, Dh]` without a bias (the merge's backward).
struct HeadSplit(Heads);

impl CustomOp1 for HeadSplit {
    fn name(&self) -> &'static str {
        "fused-head-split"
    }

    cpu_unsupported!(1);

    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        heads_fwd(
            x,
            |sfx| Ok(format!("head_split_bias_{sfx}")),
            |n, s| head_split_launch(self.0, n, dev, (s, xl), None),
            |n, s| head_split_launch(self.0, n, dev, (s, xl), None),
        )
    }
}

/// `(x + bias)` of shape `[B·L, H·Dh]` (`batch` = B) rearranged to `[B, H, L, Dh]`, in `x`'s
/// dtype.
pub fn head_split_bias(x: &Tensor, bias: &Tensor, batch: usize, heads: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op2(
        &bias.to_dtype(DType::F32)?.contiguous()?,
        HeadSplitBias(Heads { heads, batch }),
    )
}

/// Heads `[B, H, L, Dh]` merged into tokens `[B·L, H·Dh]` (differentiable).
pub fn head_merge(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(HeadMerge)
}
