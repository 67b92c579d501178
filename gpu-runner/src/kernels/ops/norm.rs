//! LayerNorm (forward and backward) and the column sums of a broadcast bias's gradient.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::CudaStorageSlice as S;
use candle_core::{
    bail, CpuStorage, CudaStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

use super::super::{
    columns_cfg, cpu_unsupported, launch, range, rows_and_width, rows_cfg, storage, suffix,
};

const LN_MAX_WIDTH: usize = 1024;

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
