//! GPU memory accounting through the CUDA default memory pool (which candle allocates from).
//!
//! Candle allocates with `cuMemAllocAsync` from the device's default pool. The pool's
//! `USED_MEM_HIGH` attribute is the high-water mark of live allocations, which is what a
//! benchmark reports as peak memory; [`MemoryPool::reset_peak`] restarts it.

use candle_core::Device;

use crate::Result;

/// The default memory pool of a CUDA device; every method is a no-op on other devices.
pub struct MemoryPool {
    #[cfg(feature = "cuda")]
    inner: Option<cuda::Pool>,
}

impl MemoryPool {
    /// The pool of `device`. On CUDA it also sets the release threshold to "never", so memory
    /// freed by one batch is reused by the next instead of being unmapped at every sync.
    pub fn of(device: &Device) -> Result<MemoryPool> {
        #[cfg(feature = "cuda")]
        {
            let inner = match device {
                Device::Cuda(dev) => Some(cuda::Pool::new(dev)?),
                _ => None,
            };
            Ok(MemoryPool { inner })
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = device;
            Ok(MemoryPool {})
        }
    }

    /// Restarts the peak at the memory in use now.
    pub fn reset_peak(&self) -> Result<()> {
        #[cfg(feature = "cuda")]
        if let Some(pool) = &self.inner {
            pool.set(cuda::USED_MEM_HIGH, 0)?;
        }
        Ok(())
    }

    /// Peak bytes in use since the last [`MemoryPool::reset_peak`]; `None` off CUDA.
    pub fn peak_bytes(&self) -> Result<Option<u64>> {
        #[cfg(feature = "cuda")]
        if let Some(pool) = &self.inner {
            return pool.get(cuda::USED_MEM_HIGH).map(Some);
        }
        Ok(None)
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::cuda_backend::cudarc::driver::sys;
    use candle_core::cuda_backend::CudaDevice;

    use crate::{Error, Result};

    fn driver_error(what: &str, code: impl std::fmt::Debug) -> Error {
        Error::Other(format!("CUDA {what} failed: {code:?}"))
    }

    pub const USED_MEM_HIGH: sys::CUmemPool_attribute =
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;

    /// A raw pool handle; the pool lives as long as the device's primary context.
    pub struct Pool {
        pool: sys::CUmemoryPool,
    }

    impl Pool {
        pub fn new(dev: &CudaDevice) -> Result<Pool> {
            let ctx = dev.cuda_stream().context().clone();
            ctx.bind_to_thread()
                .map_err(|e| driver_error("binding the context", e))?;
            let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
            // SAFETY: `pool` is a valid out-pointer and the device ordinal comes from the context.
            let rc = unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) };
            if rc != sys::CUresult::CUDA_SUCCESS {
                return Err(driver_error("cuDeviceGetDefaultMemPool", rc));
            }
            let pool = Pool { pool };
            pool.set(
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                u64::MAX,
            )?;
            Ok(pool)
        }

        pub fn set(&self, attr: sys::CUmemPool_attribute, value: u64) -> Result<()> {
            let mut value = value;
            // SAFETY: both attributes used here take a 64-bit value.
            let rc = unsafe {
                sys::cuMemPoolSetAttribute(
                    self.pool,
                    attr,
                    &mut value as *mut u64 as *mut std::ffi::c_void,
                )
            };
            if rc != sys::CUresult::CUDA_SUCCESS {
                return Err(driver_error("cuMemPoolSetAttribute", rc));
            }
            Ok(())
        }

        pub fn get(&self, attr: sys::CUmemPool_attribute) -> Result<u64> {
            let mut value = 0u64;
            // SAFETY: the attribute read here is a 64-bit value.
            let rc = unsafe {
                sys::cuMemPoolGetAttribute(
                    self.pool,
                    attr,
                    &mut value as *mut u64 as *mut std::ffi::c_void,
                )
            };
            if rc != sys::CUresult::CUDA_SUCCESS {
                return Err(driver_error("cuMemPoolGetAttribute", rc));
            }
            Ok(value)
        }
    }
}
