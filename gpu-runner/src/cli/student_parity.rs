//! `gpu-runner student-parity`: the student's parity goldens, gradients and a short training run
//! on any device and dtype, plus (on CUDA) every fused kernel against its composed op.

use std::path::PathBuf;

use gpu_runner::student::parity::{self, ParityFiles};

/// Arguments of `student-parity`.
#[derive(Debug, clap::Args)]
pub struct StudentParityArgs {
    /// The repository root holding gpu-runner/tests/{goldens,fixtures}.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// f32 or bf16 compute (bf16 keeps f32 master weights).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Updates of the short training run that must lower the loss.
    #[arg(long, default_value_t = 200)]
    pub updates: usize,
}

/// Tolerances: (logits absolute, loss and gradient-norm relative).
fn tolerances(dtype: &str) -> (f32, f64) {
    if dtype == "bf16" {
        (5e-2, 5e-2)
    } else {
        (1e-4, 1e-4)
    }
}

/// Runs `student-parity`: prints every measurement and fails if one is out of tolerance.
pub fn run(args: StudentParityArgs) -> anyhow::Result<()> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let dtype = gpu_runner::teacher::parse_dtype(&args.dtype)?;
    let mut failures = Vec::new();
    if device.is_cuda() {
        failures.extend(kernel_checks(&device)?);
    }
    let files = ParityFiles::under(&args.root);
    let r = parity::check(&files, &device, dtype, args.updates)?;
    let (logit_tol, rel_tol) = tolerances(&args.dtype);
    let on = format!("{} {}", args.device, args.dtype);
    println!(
        "student parity on {on}: max |logit - transformers| {:.3e} (tol {logit_tol:.0e}); \
         2 updates vs PyTorch: loss rel {:.3e}, grad-norm rel {:.3e} (tol {rel_tol:.0e}); \
         gradients {}/{} parameters; {} updates: MarginMSE {:.4} -> {:.4}",
        r.max_logit_diff,
        r.max_loss_rel,
        r.max_grad_norm_rel,
        r.params - r.missing_grads.len(),
        r.params,
        r.updates,
        r.loss_before,
        r.loss_after
    );
    if r.max_logit_diff.is_nan() || r.max_logit_diff > logit_tol {
        failures.push(format!("logits differ by {:.3e}", r.max_logit_diff));
    }
    let within = |x: f64| x.is_finite() && x <= rel_tol;
    if !(within(r.max_loss_rel) && within(r.max_grad_norm_rel)) {
        failures.push("training updates differ from PyTorch".into());
    }
    for name in &r.missing_grads {
        failures.push(format!("no gradient: {name}"));
    }
    if r.loss_after.partial_cmp(&r.loss_before) != Some(std::cmp::Ordering::Less) {
        failures.push("the short training run did not lower the loss".into());
    }
    anyhow::ensure!(
        failures.is_empty(),
        "student parity failed on {on}: {}",
        failures.join("; ")
    );
    Ok(())
}

#[cfg(feature = "cuda")]
fn kernel_checks(device: &candle_core::Device) -> anyhow::Result<Vec<String>> {
    let rows = gpu_runner::kernels::check::run_all(device)?;
    let mut failures = Vec::new();
    for r in &rows {
        let verdict = if r.passed() { "ok" } else { "FAIL" };
        println!(
            "kernel {:<28} {:<5} {:<24} error {:.3e} (tol {:.0e}) {verdict}",
            r.op,
            format!("{:?}", r.dtype).to_lowercase(),
            r.quantity,
            r.error,
            r.tolerance
        );
        if !r.passed() {
            failures.push(format!("kernel {} {}", r.op, r.quantity));
        }
    }
    Ok(failures)
}

#[cfg(not(feature = "cuda"))]
fn kernel_checks(_device: &candle_core::Device) -> anyhow::Result<Vec<String>> {
    Ok(Vec::new())
}
