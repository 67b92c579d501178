//! Fused CUDA kernels of the student and its optimizer (`kernels/student.cu`, compiled to PTX by
//! `build.rs`), as candle custom ops with forward *and* backward. CUDA only: the CPU keeps the
//! composed ops of [`crate::student::ops`], which pick these when a tensor is on a CUDA device
//! and [`enabled`] is true.
//!
//! Every backward is itself the forward of a no-backward custom op, so all launches happen inside
//! `cuda_fwd` with storages and layouts handed over by candle. Dropout masks are a hash of
//! `(seed, element index)`: a backward regenerates them, nothing is stored.
//!
//! [`adamw`] holds the one-launch multi-tensor AdamW and gradient norm; [`check`] compares every
//! fused op with its composed counterpart on the device.

pub mod adamw;
pub mod check;
mod check_infer;
pub mod infer;
mod ops;

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::cuda_backend::cudarc::driver::LaunchConfig;
use candle_core::cuda_backend::{CudaDevice, CudaStorageSlice as S};
use candle_core::{CudaStorage, DType, Layout, Result, Tensor};

pub use ops::{
    attention_probs, bias_dropout_residual, bias_gelu, column_sum, dropout, head_merge,
    head_split_bias, layer_norm,
};

/// The PTX of `kernels/student.cu`.
pub(crate) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/student.ptx"));
/// The name candle caches the module under.
pub(crate) const MODULE: &str = "distillery_student";
/// The PTX of `kernels/infer.cu` (the packed inference kernels of [`infer`]).
pub(crate) const INFER_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/infer.ptx"));
/// The name candle caches the inference module under.
pub(crate) const INFER_MODULE: &str = "distillery_infer";

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether the student's ops use the fused kernels on CUDA (default: yes).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns the fused kernels on or off (benchmarks measure both).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Loads `$name` from the student module (or, with `in $module, $ptx`, from another) and
/// launches it with `$cfg` and the given arguments.
macro_rules! launch {
    ($dev:expr, $name:expr, $cfg:expr; $($arg:expr),* $(,)?) => {
        $crate::kernels::launch!(
            in $crate::kernels::MODULE, $crate::kernels::PTX;
            $dev, $name, $cfg; $($arg),*
        )
    };
    (in $module:expr, $ptx:expr; $dev:expr, $name:expr, $cfg:expr; $($arg:expr),* $(,)?) => {{
        use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
        use candle_core::cuda_backend::WrapErr;
        let func = $dev.get_or_load_custom_func($name, $module, $ptx)?;
        let mut builder = func.builder();
        $( builder.arg($arg); )*
        // SAFETY: the kernel's parameters are exactly the arguments pushed above, in order and
        // type, and every buffer holds the element count passed beside it.
        unsafe { builder.launch($cfg) }.w()?;
    }};
}
pub(crate) use launch;

/// The error of a fused op asked to run on the CPU.
pub(crate) fn cpu_only<T>(name: &str) -> Result<T> {
    candle_core::bail!("{name} is a CUDA kernel; the CPU uses the composed ops")
}

/// The `cpu_fwd` of a CUDA-only custom op with 1, 2 or 3 inputs: an error.
macro_rules! cpu_unsupported {
    (1) => {
        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
            $crate::kernels::cpu_only(self.name())
        }
    };
    (2) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            $crate::kernels::cpu_only(self.name())
        }
    };
    (3) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            $crate::kernels::cpu_only(self.name())
        }
    };
}

pub(crate) use cpu_unsupported;

/// A custom op's output storage on `dev`.
pub(crate) fn storage(slice: S, dev: &CudaDevice) -> CudaStorage {
    CudaStorage {
        slice,
        device: dev.clone(),
    }
}

/// One warp per row, 8 rows per block.
pub(crate) fn rows_cfg(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(8).max(1) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A grid-stride loop over `n` elements.
pub(crate) fn elems_cfg(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).clamp(1, 16_384) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A block of 256 threads per row at a time (`ROW_LOOP` kernels).
pub(crate) fn row_blocks_cfg(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.clamp(1, 16_384) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Blocks of 32 columns × 32 row groups.
pub(crate) fn columns_cfg(d: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (d.div_ceil(32).max(1) as u32, 1, 1),
        block_dim: (32, 32, 1),
        shared_mem_bytes: 0,
    }
}

/// The element range of a contiguous layout (its start offset may be non-zero).
pub(crate) fn range(layout: &Layout, what: &str) -> Result<Range<usize>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(start..end),
        None => candle_core::bail!("fused kernel: {what} must be contiguous"),
    }
}

/// The kernel-name suffix of a float dtype.
pub(crate) fn suffix(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("f32"),
        DType::BF16 => Ok("bf16"),
        other => candle_core::bail!("fused kernels take f32 or bf16, got {other:?}"),
    }
}

/// `(rows, last dim)` of a tensor's shape.
pub(crate) fn rows_and_width(layout: &Layout) -> (usize, usize) {
    let d = layout.dims().last().copied().unwrap_or(1).max(1);
    (layout.shape().elem_count() / d, d)
}

/// True when `t` lives on a CUDA device and the fused kernels are on.
pub fn applies(t: &Tensor) -> bool {
    enabled() && t.device().is_cuda()
}
