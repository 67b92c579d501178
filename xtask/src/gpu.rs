//! `cargo xtask gpu-build`: the CUDA build of `gpu-runner`, for carrying to a GPU machine.
//!
//! Follows the tested recipe of `shared/docs/cuda-build.md`: CUDA 13.0 compiler, headers and
//! libraries from PyPI wheels in a private folder, a link-time stub of the driver library
//! (`libcuda.so`, replaced by the real driver at run time), then
//! `cargo build --release -p gpu-runner --features cuda` into its own target dir so the CPU build
//! and CI never see CUDA. The stripped binary is written xz-compressed to `gpu-runner.xz`
//! (git-ignored) for the device tool's `carry`. Every install step runs only if its result is
//! missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::util::{self, exec, step};

/// Where the CUDA wheels go, unless `DISTILLERY_CUDA_WHEELS` says otherwise.
const DEFAULT_WHEELS_DIR: &str = "/opt/cuda-wheels";

/// The CUDA 13.0 wheels. nvcc must stay 13.0.x: driver 580 accepts PTX only up to 9.0.
const WHEELS: [&str; 8] = [
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cccl==13.0.85",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cublas==13.0.2.14",
    "nvidia-curand==10.4.0.35",
];

/// Unversioned library names the linker needs, made as links to the wheels' versioned files.
const LIBS: [&str; 5] = [
    "cudart.so.13",
    "cublas.so.13",
    "cublasLt.so.13",
    "curand.so.10",
    "nvrtc.so.13",
];

/// The CUDA target dir, separate from the CPU one.
pub const CUDA_TARGET_DIR: &str = "target/cuda";

/// The compressed binary to carry to the device.
pub const CARRY_PATH: &str = "gpu-runner.xz";

/// Installs what is missing, builds the CUDA `gpu-runner` and writes [`CARRY_PATH`].
pub fn build() -> anyhow::Result<()> {
    if util::is_ci() {
        bail!("gpu-build is not part of CI: it needs the CUDA toolkit wheels (about 1.2 GB)");
    }
    let cuda = cuda_home();
    install_wheels(&cuda)?;
    link_libraries(&cuda)?;
    driver_stub(&cuda)?;
    step("building gpu-runner with --features cuda (a clean build takes ~12 min on 2 cores)");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(cuda.join("bin")).chain(std::env::split_paths(&path)),
    )?;
    let compute_cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    exec(
        util::cargo()
            .args([
                "build",
                "--release",
                "-p",
                "gpu-runner",
                "--features",
                "cuda",
            ])
            .args(["--target-dir", CUDA_TARGET_DIR])
            .env("PATH", path)
            .env("CUDA_HOME", &cuda)
            .env("CUDA_COMPUTE_CAP", compute_cap),
    )?;
    compress(&Path::new(CUDA_TARGET_DIR).join("release/gpu-runner"))
}

/// `$DISTILLERY_CUDA_WHEELS/nvidia/cu13`, the CUDA_HOME of the wheels.
fn cuda_home() -> PathBuf {
    let root = std::env::var_os("DISTILLERY_CUDA_WHEELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_WHEELS_DIR));
    root.join("nvidia/cu13")
}

fn install_wheels(cuda: &Path) -> anyhow::Result<()> {
    if cuda.join("bin/nvcc").is_file() {
        return Ok(());
    }
    let target = cuda
        .parent()
        .and_then(Path::parent)
        .context("the wheels dir has no parent")?;
    step("installing the CUDA 13.0 wheels (about 1.2 GB)");
    exec(
        Command::new("python3")
            .args(["-m", "pip", "install", "--no-deps", "--target"])
            .arg(target)
            .args(WHEELS),
    )
}

fn link_libraries(cuda: &Path) -> anyhow::Result<()> {
    let lib = cuda.join("lib");
    for name in LIBS {
        let versioned = lib.join(format!("lib{name}"));
        let plain = lib.join(format!(
            "lib{}",
            name.rsplit_once('.').map_or(name, |p| p.0)
        ));
        if !versioned.exists() {
            bail!(
                "{} is missing: the wheels are incomplete",
                versioned.display()
            );
        }
        if !plain.exists() {
            std::os::unix::fs::symlink(versioned.file_name().context("no file name")?, &plain)
                .with_context(|| format!("linking {}", plain.display()))?;
        }
    }
    Ok(())
}

/// `lib/stubs/libcuda.so` exporting every `cu*` function cudarc declares, each returning 999.
fn driver_stub(cuda: &Path) -> anyhow::Result<()> {
    let stub = cuda.join("lib/stubs/libcuda.so");
    if stub.is_file() {
        return Ok(());
    }
    step("making the libcuda link stub");
    exec(util::cargo().args(["fetch", "--locked"]))?;
    let version = util::locked_version("cudarc")?;
    let decls = cudarc_sys_source(&version)?;
    let text =
        std::fs::read_to_string(&decls).with_context(|| format!("reading {}", decls.display()))?;
    let mut names: Vec<&str> = text
        .split("pub unsafe fn ")
        .skip(1)
        .filter_map(|rest| rest.split_once('(').map(|(name, _)| name))
        .filter(|name| {
            name.starts_with("cu") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.len() < 100 {
        bail!(
            "only {} cu* functions found in {}",
            names.len(),
            decls.display()
        );
    }
    let source: String = names
        .iter()
        .map(|n| format!("int {n}(void){{return 999;}}\n"))
        .collect();
    let dir = stub.parent().context("stub has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let c_file = dir.join("libcuda_stub.c");
    std::fs::write(&c_file, source).with_context(|| format!("writing {}", c_file.display()))?;
    exec(
        Command::new("gcc")
            .args(["-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o"])
            .arg(&stub)
            .arg(&c_file),
    )
}

/// cudarc's `src/driver/sys/mod.rs` in the cargo registry.
fn cudarc_sys_source(version: &str) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let src = home.join("registry/src");
    for index in std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
        let candidate = index?
            .path()
            .join(format!("cudarc-{version}/src/driver/sys/mod.rs"));
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("cudarc {version} sources not found under {}", src.display())
}

/// Strips a copy of `binary` and writes it xz-compressed to [`CARRY_PATH`] (via a temp file).
fn compress(binary: &Path) -> anyhow::Result<()> {
    step(&format!(
        "compressing {} into {CARRY_PATH}",
        binary.display()
    ));
    let stripped = Path::new(CUDA_TARGET_DIR).join("gpu-runner.stripped");
    std::fs::copy(binary, &stripped).with_context(|| format!("copying {}", binary.display()))?;
    exec(Command::new("strip").arg(&stripped))?;
    let tmp = format!("{CARRY_PATH}.tmp");
    let out = std::fs::File::create(&tmp).with_context(|| format!("creating {tmp}"))?;
    let status = Command::new("xz")
        .args(["-T2", "-6", "-c"])
        .arg(&stripped)
        .stdout(out)
        .status()
        .context("starting xz")?;
    if !status.success() {
        bail!("xz failed ({status})");
    }
    std::fs::rename(&tmp, CARRY_PATH).with_context(|| format!("renaming {tmp}"))?;
    let size = std::fs::metadata(CARRY_PATH)?.len();
    eprintln!(
        "wrote {CARRY_PATH} ({:.1} MB); on the device: \
         python3 -c \"import lzma,shutil;shutil.copyfileobj(lzma.open('{CARRY_PATH}'),open('gpu-runner','wb'))\" && chmod +x gpu-runner",
        size as f64 / 1e6
    );
    Ok(())
}
