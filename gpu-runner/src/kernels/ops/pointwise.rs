//! Bias + GELU, dropout and bias + dropout + residual, forward and backward.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr};
use candle_core::cuda_backend::{CudaDevice, CudaStorageSlice as S};
use candle_core::{
    bail, CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape,
    Tensor,
};
use half::bf16;

use super::super::{
    cpu_unsupported, elems_cfg, launch, range, row_blocks_cfg, rows_and_width, storage, suffix,
};

use super::keep;
use super::norm::column_sum;

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
