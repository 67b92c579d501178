//! The fused student ops as candle custom ops (forward + backward) and their public entry points.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr};
use candle_core::cuda_backend::{CudaDevice, CudaStorageSlice as S};
use candle_core::{
    bail, CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape,
    Tensor,
};
use half::bf16;

use super::{
    columns_cfg, cpu_unsupported, elems_cfg, launch, range, row_blocks_cfg, rows_and_width,
    rows_cfg, storage, suffix,
};

/// Widest row the LayerNorm kernels hold in registers.
const LN_MAX_WIDTH: usize = 1024;

/// Dropout probability and the scale of kept elements.
fn keep(p: f32) -> (f32, f32) {
    if p > 0.0 {
        (p, 1.0 / (1.0 - p))
    } else {
        (0.0, 1.0)
    }
}

// ------------------------------------------------------------------------------- LayerNorm

struct LayerNorm {
    eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    cpu_unsupported!(3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        g: &CudaStorage,
        gl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let (n, d) = rows_and_width(xl);
        let xs = x.as_cuda_slice::<f32>()?.slice(range(xl, "x")?);
        let gs = g.as_cuda_slice::<f32>()?.slice(range(gl, "gamma")?);
        let bs = b.as_cuda_slice::<f32>()?.slice(range(bl, "beta")?);
        let mut y = unsafe { dev.alloc::<f32>(n * d)? };
        let (n32, d32) = (n as i32, d as i32);
        launch!(dev, "ln_fwd_f32", rows_cfg(n); &xs, &gs, &bs, &mut y, &n32, &d32, &self.eps);
        Ok((storage(S::F32(y), dev), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        g: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = g.elem_count();
        let n = x.elem_count() / d;
        let packed = x.apply_op3_no_bwd(g, &dy.contiguous()?, &LayerNormBwd { eps: self.eps })?;
        let dx = packed.narrow(0, 0, n * d)?.reshape(x.shape())?;
        let dg = packed.narrow(0, n * d, d)?.reshape(g.shape())?;
        let db = packed.narrow(0, n * d + d, d)?.reshape(g.shape())?;
        Ok((Some(dx), Some(dg), Some(db)))
    }
}

/// `(x, gamma, dy)` → `[dx (N·D), dgamma (D), dbeta (D)]`, packed flat.
struct LayerNormBwd {
    eps: f32,
}

impl CustomOp3 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "fused-layer-norm-bwd"
    }

    cpu_unsupported!(3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        g: &CudaStorage,
        gl: &Layout,
        dy: &CudaStorage,
        dyl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let (n, d) = rows_and_width(xl);
        let xs = x.as_cuda_slice::<f32>()?.slice(range(xl, "x")?);
        let gs = g.as_cuda_slice::<f32>()?.slice(range(gl, "gamma")?);
        let dys = dy.as_cuda_slice::<f32>()?.slice(range(dyl, "dy")?);
        let mut out = unsafe { dev.alloc::<f32>(n * d + 2 * d)? };
        let mut stats = unsafe { dev.alloc::<f32>(2 * n)? };
        let (n32, d32) = (n as i32, d as i32);
        {
            let mut dx = out.slice_mut(0..n * d);
            launch!(dev, "ln_bwd_x_f32", rows_cfg(n);
                &xs, &gs, &dys, &mut dx, &mut stats, &n32, &d32, &self.eps);
        }
        {
            let mut dw = out.slice_mut(n * d..n * d + 2 * d);
            launch!(dev, "ln_bwd_weights_f32", columns_cfg(d);
                &xs, &dys, &stats, &mut dw, &n32, &d32);
        }
        Ok((storage(S::F32(out), dev), Shape::from(n * d + 2 * d)))
    }
}

/// LayerNorm over the last dimension of an f32 tensor (width ≤ 1024), with f32 gamma and beta.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let d = gamma.elem_count();
    if d > LN_MAX_WIDTH || x.dims().last() != Some(&d) {
        bail!("fused LayerNorm: width {d} (at most {LN_MAX_WIDTH}, equal to x's last dimension)");
    }
    x.to_dtype(DType::F32)?.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        LayerNorm { eps: eps as f32 },
    )
}

// ------------------------------------------------------------------------------- column sum

/// `[.., D]` → `[D]` f32 sums over every row (a broadcast bias's gradient).
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "fused-column-sum"
    }

    cpu_unsupported!(1);

    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let (n, d) = rows_and_width(xl);
        let mut out = unsafe { dev.alloc::<f32>(d)? };
        let (n32, d32) = (n as i32, d as i32);
        let name = format!("column_sum_{}", suffix(x.dtype())?);
        match &x.slice {
            S::F32(s) => {
                let xs = s.slice(range(xl, "x")?);
                launch!(dev, &name, columns_cfg(d); &xs, &mut out, &n32, &d32);
            }
            S::BF16(s) => {
                let xs = s.slice(range(xl, "x")?);
                launch!(dev, &name, columns_cfg(d); &xs, &mut out, &n32, &d32);
            }
            _ => bail!("column sum takes f32 or bf16"),
        }
        Ok((storage(S::F32(out), dev), Shape::from(d)))
    }
}

/// Sums of every column of `x` (`[.., D]` → `[D]`, f32); no backward.
pub fn column_sum(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&ColumnSum)
}

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

// ------------------------------------------------------------------------------- bias + GELU

/// An elementwise kernel over `x` with a broadcast f32 `bias` over the last dimension, optionally
/// a same-dtype gradient, writing `x`'s dtype.
fn bias_elementwise<T: DeviceRepr>(
    name: &str,
    dev: &CudaDevice,
    x: (&CudaSlice<T>, &Layout),
    bias: (&CudaStorage, &Layout),
    dy: Option<(&CudaSlice<T>, &Layout)>,
) -> Result<CudaSlice<T>> {
    let (n_rows, d) = rows_and_width(x.1);
    let n = n_rows * d;
    let xs = x.0.slice(range(x.1, "x")?);
    let bs = bias.0.as_cuda_slice::<f32>()?.slice(range(bias.1, "bias")?);
    let mut out = unsafe { dev.alloc::<T>(n)? };
    let (n64, d32) = (n as i64, d as i32);
    match dy {
        None => launch!(dev, name, row_blocks_cfg(n_rows); &xs, &bs, &mut out, &n64, &d32),
        Some((g, gl)) => {
            let gs = g.slice(range(gl, "dy")?);
            launch!(dev, name, row_blocks_cfg(n_rows); &xs, &bs, &gs, &mut out, &n64, &d32)
        }
    }
    Ok(out)
}

struct BiasGelu;

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "fused-bias-gelu"
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
        let name = format!("bias_gelu_fwd_{}", suffix(x.dtype())?);
        let slice = match &x.slice {
            S::F32(s) => S::F32(bias_elementwise(&name, dev, (s, xl), (b, bl), None)?),
            S::BF16(s) => S::BF16(bias_elementwise(&name, dev, (s, xl), (b, bl), None)?),
            _ => bail!("bias + GELU takes f32 or bf16"),
        };
        Ok((storage(slice, dev), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = x.apply_op3_no_bwd(bias, &dy.contiguous()?, &BiasGeluBwd)?;
        let db = column_sum(&dx)?.reshape(bias.shape())?;
        Ok((Some(dx), Some(db)))
    }
}

struct BiasGeluBwd;

impl CustomOp3 for BiasGeluBwd {
    fn name(&self) -> &'static str {
        "fused-bias-gelu-bwd"
    }

    cpu_unsupported!(3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
        dy: &CudaStorage,
        dyl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let name = format!("bias_gelu_bwd_{}", suffix(x.dtype())?);
        let slice = match (&x.slice, &dy.slice) {
            (S::F32(s), S::F32(g)) => S::F32(bias_elementwise(
                &name,
                dev,
                (s, xl),
                (b, bl),
                Some((g, dyl)),
            )?),
            (S::BF16(s), S::BF16(g)) => S::BF16(bias_elementwise(
                &name,
                dev,
                (s, xl),
                (b, bl),
                Some((g, dyl)),
            )?),
            _ => bail!("bias + GELU: x and its gradient must share a float dtype"),
        };
        Ok((storage(slice, dev), xl.shape().clone()))
    }
}

/// `GELU_erf(x + bias)` in `x`'s dtype (f32 arithmetic), bias f32 over the last dimension.
pub fn bias_gelu(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&bias.to_dtype(DType::F32)?.contiguous()?, BiasGelu)
}

// --------------------------------------------------------------------------------- dropout

/// `x · keep(seed, i)` written as `out` dtype; its own backward with the same seed.
#[derive(Clone, Copy)]
struct Dropout {
    p: f32,
    seed: u64,
    out: DType,
}

fn dropout_launch<TI: DeviceRepr, TO: DeviceRepr>(
    op: &Dropout,
    name: &str,
    dev: &CudaDevice,
    x: &CudaSlice<TI>,
    xl: &Layout,
) -> Result<CudaSlice<TO>> {
    let n = xl.shape().elem_count();
    let xs = x.slice(range(xl, "x")?);
    let mut y = unsafe { dev.alloc::<TO>(n)? };
    let (p, keep_scale) = keep(op.p);
    let n64 = n as i64;
    launch!(dev, name, elems_cfg(n); &xs, &mut y, &n64, &p, &keep_scale, &op.seed);
    Ok(y)
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "fused-dropout"
    }

    cpu_unsupported!(1);

    fn cuda_fwd(&self, x: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let name = format!("dropout_{}_{}", suffix(x.dtype())?, suffix(self.out)?);
        let slice = match (&x.slice, self.out) {
            (S::F32(s), DType::F32) => S::F32(dropout_launch::<f32, f32>(self, &name, dev, s, xl)?),
            (S::BF16(s), DType::BF16) => {
                S::BF16(dropout_launch::<bf16, bf16>(self, &name, dev, s, xl)?)
            }
            (S::F32(s), DType::BF16) => {
                S::BF16(dropout_launch::<f32, bf16>(self, &name, dev, s, xl)?)
            }
            _ => bail!(
                "fused dropout: unsupported dtypes {:?} → {:?}",
                x.dtype(),
                self.out
            ),
        };
        Ok((storage(slice, dev), xl.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let back = Dropout {
            out: x.dtype(),
            ..*self
        };
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&back)?))
    }
}

/// Inverted dropout with probability `p`, the mask a hash of `(seed, index)`.
pub fn dropout(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    let op = Dropout {
        p: p as f32,
        seed,
        out: x.dtype(),
    };
    x.contiguous()?.apply_op1(op)
}

// ------------------------------------------------------------- bias + dropout + residual

/// `residual + dropout(x + bias)` in f32: `x` the dense layer's output (f32 or bf16).
struct BiasDropoutResidual {
    p: f32,
    seed: u64,
}

fn bias_dropout_residual_launch<T: DeviceRepr>(
    op: &BiasDropoutResidual,
    name: &str,
    dev: &CudaDevice,
    x: (&CudaSlice<T>, &Layout),
    b: (&CudaStorage, &Layout),
    r: (&CudaStorage, &Layout),
) -> Result<CudaSlice<f32>> {
    let (n_rows, d) = rows_and_width(x.1);
    let n = n_rows * d;
    let xs = x.0.slice(range(x.1, "x")?);
    let bs = b.0.as_cuda_slice::<f32>()?.slice(range(b.1, "bias")?);
    let rs = r.0.as_cuda_slice::<f32>()?.slice(range(r.1, "residual")?);
    let mut out = unsafe { dev.alloc::<f32>(n)? };
    let (p, keep_scale) = keep(op.p);
    let (n64, d32) = (n as i64, d as i32);
    launch!(dev, name, row_blocks_cfg(n_rows);
        &xs, &bs, &rs, &mut out, &n64, &d32, &p, &keep_scale, &op.seed);
    Ok(out)
}

impl CustomOp3 for BiasDropoutResidual {
    fn name(&self) -> &'static str {
        "fused-bias-dropout-residual"
    }

    cpu_unsupported!(3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
        r: &CudaStorage,
        rl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let dev = &x.device;
        let name = format!("bias_dropout_residual_{}", suffix(x.dtype())?);
        let out = match &x.slice {
            S::F32(s) => bias_dropout_residual_launch(self, &name, dev, (s, xl), (b, bl), (r, rl))?,
            S::BF16(s) => {
                bias_dropout_residual_launch(self, &name, dev, (s, xl), (b, bl), (r, rl))?
            }
            _ => bail!("bias + dropout + residual takes f32 or bf16"),
        };
        Ok((storage(S::F32(out), dev), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        bias: &Tensor,
        _residual: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let back = Dropout {
            p: self.p,
            seed: self.seed,
            out: x.dtype(),
        };
        let dx = dy.contiguous()?.apply_op1_no_bwd(&back)?;
        let db = column_sum(&dx)?.reshape(bias.shape())?;
        Ok((Some(dx), Some(db), Some(dy.clone())))
    }
}

/// `residual + dropout(x + bias, p)` in f32; `x` f32 or bf16, `bias` and `residual` f32.
pub fn bias_dropout_residual(
    x: &Tensor,
    bias: &Tensor,
    residual: &Tensor,
    p: f64,
    seed: u64,
) -> Result<Tensor> {
    let op = BiasDropoutResidual { p: p as f32, seed };
    x.contiguous()?.apply_op3(
        &bias.to_dtype(DType::F32)?.contiguous()?,
        &residual.to_dtype(DType::F32)?.contiguous()?,
        op,
    )
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
