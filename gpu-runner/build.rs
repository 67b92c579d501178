//! Compiles the fused student kernels (`kernels/student.cu`, `kernels/infer.cu`) to PTX with
//! `nvcc`, only when the `cuda` feature is on; the CPU build (and CI) never needs a CUDA toolkit.

use std::path::PathBuf;
use std::process::Command;

/// The kernel sources, each compiled to `$OUT_DIR/<name>.ptx`.
const SOURCES: [&str; 2] = ["student", "infer"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels/common.cuh");
    for name in SOURCES {
        println!("cargo::rerun-if-changed=kernels/{name}.cu");
    }
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let nvcc = std::env::var("CUDA_HOME")
        .map(|home| format!("{home}/bin/nvcc"))
        .unwrap_or_else(|_| "nvcc".into());
    for name in SOURCES {
        let source = format!("kernels/{name}.cu");
        let status = Command::new(&nvcc)
            .args(["--ptx", "-O3", "-std=c++17"])
            .arg(format!("-arch=sm_{cap}"))
            .arg(&source)
            .arg("-o")
            .arg(out_dir.join(format!("{name}.ptx")))
            .status()
            .unwrap_or_else(|e| {
                panic!("running {nvcc}: {e} (set CUDA_HOME; see cargo xtask gpu-build)")
            });
        assert!(status.success(), "{nvcc} failed on {source} ({status})");
    }
}
