//! Compiles the fused student kernels (`kernels/student.cu`, `kernels/infer.cu`) to PTX with
//! `nvcc`, only when the `cuda` feature is on; the CPU build (and CI) never needs a CUDA toolkit.

use std::path::PathBuf;
use std::process::Command;

/// The kernel sources, each compiled to `$OUT_DIR/<name>.ptx`.
const SOURCES: [&str; 2] = ["student", "infer"];

/// Versions the runner's manifest reports: the git commit it was built from and candle's
/// version in the lock file.
fn versions() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("..");
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo::rustc-env=DISTILLERY_GIT_COMMIT={commit}{suffix}");
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo::rerun-if-changed={dir}/HEAD");
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo::rerun-if-changed={dir}/{head}");
        }
    }
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let candle = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"candle-core\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map_or("unknown", |v| v.trim_matches('"'));
    println!("cargo::rustc-env=DISTILLERY_CANDLE_VERSION={candle}");
    println!("cargo::rerun-if-changed=../Cargo.lock");
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    versions();
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
