//! One-launch multi-tensor torch AdamW and squared gradient norm over f32 tensors on CUDA.
//!
//! The kernel updates parameters and moments in place through raw device pointers taken under
//! candle's *read* guards (candle has no public mutable storage). This is sound because candle
//! runs every op of a device on one stream, the pointed-to tensors are owned by the optimizer (or
//! are the model's variables, which nothing else writes) and stay alive until the launch is
//! enqueued.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DevicePtr, LaunchConfig};
use candle_core::cuda_backend::CudaDevice;
use candle_core::{bail, Device, Result, Storage, Tensor};

use super::{launch, range};

/// Elements per CUDA block (256 threads × 32).
const CHUNK: usize = 8192;
/// u64 words per tensor in the kernel's table.
const META: usize = 8;

/// One tensor's part of an AdamW step. `m` and `v` are updated in place, like `param`.
pub struct AdamWTensor<'a> {
    /// The f32 parameter (a contiguous `Var`).
    pub param: &'a Tensor,
    /// Its f32 gradient.
    pub grad: &'a Tensor,
    /// First moment (f32, same shape).
    pub m: &'a Tensor,
    /// Second moment (f32, same shape).
    pub v: &'a Tensor,
    /// Decoupled weight decay of the tensor's group.
    pub weight_decay: f64,
}

/// The step's scalars (torch AdamW, spec §C.1).
#[derive(Debug, Clone, Copy)]
pub struct AdamWScalars {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// 1-based step count.
    pub step: u64,
    /// Every gradient is multiplied by this first (global-norm clipping; 1 = none).
    pub grad_scale: f64,
}

fn cuda_device(t: &Tensor) -> Result<CudaDevice> {
    match t.device() {
        Device::Cuda(dev) => Ok(dev.clone()),
        other => bail!("fused AdamW runs on CUDA, got {other:?}"),
    }
}

/// The device address of `t`'s first element (contiguous f32 only).
fn raw_ptr(t: &Tensor, what: &str) -> Result<u64> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cs) = &*storage else {
        bail!("{what} is not on a CUDA device")
    };
    if cs.dtype() != candle_core::DType::F32 {
        bail!("{what} must be f32, got {:?}", cs.dtype());
    }
    let r = range(layout, what)?;
    let stream = cs.device.cuda_stream();
    let (ptr, _sync) = cs.as_cuda_slice::<f32>()?.device_ptr(&stream);
    Ok(ptr + (r.start * std::mem::size_of::<f32>()) as u64)
}

/// The kernel's table: `[param, grad, m, v, numel, first block, decay bits, 0]` per tensor.
struct Table {
    words: Vec<u64>,
    blocks: usize,
}

impl Table {
    fn new() -> Table {
        Table {
            words: Vec::new(),
            blocks: 0,
        }
    }

    fn push(&mut self, ptrs: [u64; 4], numel: usize, decay: f32) {
        if numel == 0 {
            return;
        }
        self.words.extend(ptrs);
        self.words.extend([
            numel as u64,
            self.blocks as u64,
            u64::from(decay.to_bits()),
            0,
        ]);
        self.blocks += numel.div_ceil(CHUNK);
    }

    fn tensors(&self) -> usize {
        self.words.len() / META
    }

    fn cfg(&self) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (self.blocks as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// `Σ g²` over every gradient, in one launch plus a final f64 reduction (one host sync).
pub fn grad_sq_norm(grads: &[&Tensor]) -> Result<f64> {
    let Some(first) = grads.first() else {
        return Ok(0.0);
    };
    let dev = cuda_device(first)?;
    let grads: Vec<Tensor> = grads
        .iter()
        .map(|g| g.contiguous())
        .collect::<Result<_>>()?;
    let mut table = Table::new();
    for (i, g) in grads.iter().enumerate() {
        table.push(
            [0, raw_ptr(g, &format!("gradient {i}"))?, 0, 0],
            g.elem_count(),
            1.0,
        );
    }
    if table.blocks == 0 {
        return Ok(0.0);
    }
    let meta = dev.clone_htod(&table.words)?;
    let mut partial = unsafe { dev.alloc::<f32>(table.blocks)? };
    let nt = table.tensors() as i32;
    launch!(dev, "grad_sumsq_multi_f32", table.cfg(); &meta, &nt, &mut partial);
    let mut out = dev.alloc_zeros::<f64>(1)?;
    let n = table.blocks as i32;
    let one_block = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (1024, 1, 1),
        shared_mem_bytes: 0,
    };
    launch!(dev, "sum_f32_to_f64", one_block; &partial, &mut out, &n);
    let host = dev.clone_dtoh(&out)?;
    drop(grads);
    Ok(host.first().copied().unwrap_or(0.0))
}

/// `acc += g` for every pair, in place and in one launch (gradient accumulation). Every `acc`
/// must be a contiguous f32 tensor that nothing else reads or aliases.
pub fn add_into(pairs: &[(&Tensor, &Tensor)]) -> Result<()> {
    let Some((first, _)) = pairs.first() else {
        return Ok(());
    };
    let dev = cuda_device(first)?;
    let grads: Vec<Tensor> = pairs
        .iter()
        .map(|(_, g)| g.contiguous())
        .collect::<Result<_>>()?;
    let mut table = Table::new();
    for (i, ((acc, _), g)) in pairs.iter().zip(&grads).enumerate() {
        if acc.elem_count() != g.elem_count() {
            bail!("add_into: accumulator {i} and its gradient differ in size");
        }
        let ptrs = [
            raw_ptr(acc, &format!("accumulator {i}"))?,
            raw_ptr(g, &format!("gradient {i}"))?,
            0,
            0,
        ];
        table.push(ptrs, acc.elem_count(), 1.0);
    }
    if table.blocks == 0 {
        return Ok(());
    }
    let meta = dev.clone_htod(&table.words)?;
    let nt = table.tensors() as i32;
    launch!(dev, "add_into_multi_f32", table.cfg(); &meta, &nt);
    drop(grads);
    Ok(())
}

/// One torch AdamW step over every tensor, in one launch.
pub fn adamw_step(tensors: &[AdamWTensor], s: &AdamWScalars) -> Result<()> {
    let Some(first) = tensors.first() else {
        return Ok(());
    };
    let dev = cuda_device(first.param)?;
    let grads: Vec<Tensor> = tensors
        .iter()
        .map(|t| t.grad.contiguous())
        .collect::<Result<_>>()?;
    let mut table = Table::new();
    for (i, (t, g)) in tensors.iter().zip(&grads).enumerate() {
        let n = t.param.elem_count();
        if g.elem_count() != n || t.m.elem_count() != n || t.v.elem_count() != n {
            bail!("fused AdamW: tensor {i} has mismatched parameter, gradient and moment sizes");
        }
        let ptrs = [
            raw_ptr(t.param, &format!("parameter {i}"))?,
            raw_ptr(g, &format!("gradient {i}"))?,
            raw_ptr(t.m, &format!("first moment {i}"))?,
            raw_ptr(t.v, &format!("second moment {i}"))?,
        ];
        table.push(ptrs, n, (1.0 - s.lr * t.weight_decay) as f32);
    }
    if table.blocks == 0 {
        return Ok(());
    }
    let meta = dev.clone_htod(&table.words)?;
    let nt = table.tensors() as i32;
    let t = s.step as i32;
    let scalars = [
        s.grad_scale as f32,
        s.beta2 as f32,
        (1.0 - s.beta1) as f32,
        (1.0 - s.beta2) as f32,
        (s.lr / (1.0 - s.beta1.powi(t))) as f32,
        (1.0 - s.beta2.powi(t)).sqrt() as f32,
        s.eps as f32,
    ];
    let [scale, b2, one_minus_b1, one_minus_b2, step_size, bc2_sqrt, eps] = scalars;
    launch!(dev, "adamw_multi_f32", table.cfg();
        &meta, &nt, &scale, &b2, &one_minus_b1, &one_minus_b2, &step_size, &bc2_sqrt, &eps);
    drop(grads);
    Ok(())
}
