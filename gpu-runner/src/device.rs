//! Choosing the compute device from a `--device` string.

use candle_core::Device;

use crate::{Error, Result};

/// Parses `cpu`, `cuda` or `cuda:N` into a candle device.
pub fn parse_device(spec: &str) -> Result<Device> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => cuda(n),
            _ => Err(Error::Other(format!(
                "unknown device {spec:?}: use cpu, cuda or cuda:N"
            ))),
        },
    }
}

fn cuda(ordinal: usize) -> Result<Device> {
    if !candle_core::utils::cuda_is_available() {
        return Err(Error::Other(
            "this gpu-runner was built without CUDA: rebuild with `cargo xtask gpu-build`".into(),
        ));
    }
    Ok(Device::new_cuda(ordinal)?)
}

/// A one-line description of the device, for manifests and runner registration.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", candle_core::utils::get_num_threads()),
        #[cfg(feature = "cuda")]
        Device::Cuda(dev) => cuda_description(dev),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => "cuda".to_string(),
        Device::Metal(_) => "metal".to_string(),
    }
}

/// `cuda: NVIDIA H200, driver 580.95.05, CUDA 13.0`: the card's name and the driver's versions
/// (the kernel module's, from `/proc/driver/nvidia/version`; the CUDA API level it supports).
#[cfg(feature = "cuda")]
fn cuda_description(dev: &candle_core::CudaDevice) -> String {
    use candle_core::cuda_backend::cudarc::driver::sys;
    let ctx = dev.cuda_stream().context().clone();
    let mut name = [0 as std::ffi::c_char; 256];
    let mut api = 0i32;
    // SAFETY: `name` is a writable buffer of the given length and `api` a valid out-pointer.
    let (named, versioned) = unsafe {
        (
            sys::cuDeviceGetName(name.as_mut_ptr(), name.len() as i32, ctx.cu_device()),
            sys::cuDriverGetVersion(&mut api),
        )
    };
    let name = if named == sys::CUresult::CUDA_SUCCESS {
        // SAFETY: on success the driver wrote a NUL-terminated string into `name`.
        unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        "unknown GPU".into()
    };
    let cuda = if versioned == sys::CUresult::CUDA_SUCCESS {
        format!("{}.{}", api / 1000, (api % 1000) / 10)
    } else {
        "?".into()
    };
    let driver = std::fs::read_to_string("/proc/driver/nvidia/version")
        .ok()
        .and_then(|text| kernel_module_version(&text))
        .unwrap_or_else(|| "?".into());
    format!("cuda: {name}, driver {driver}, CUDA {cuda}")
}

/// The version in the first line of `/proc/driver/nvidia/version` (`... Kernel Module  580.95.05
/// ...`).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn kernel_module_version(text: &str) -> Option<String> {
    text.lines()
        .next()?
        .split_whitespace()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_driver_version() {
        let text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Tue Sep 30 2025\nGCC version: 12\n";
        assert_eq!(kernel_module_version(text).as_deref(), Some("580.95.05"));
        assert_eq!(kernel_module_version("no version here"), None);
    }

    #[test]
    fn parses_cpu_and_rejects_garbage() {
        assert!(matches!(parse_device("cpu"), Ok(Device::Cpu)));
        let err = parse_device("tpu").unwrap_err().to_string();
        assert!(err.contains("unknown device"), "{err}");
        if !candle_core::utils::cuda_is_available() {
            assert!(parse_device("cuda:0").is_err());
        }
    }
}
