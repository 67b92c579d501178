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
        Device::Cuda(_) => "cuda".to_string(),
        Device::Metal(_) => "metal".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
