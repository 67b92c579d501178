//! `gpu-runner bench`: throughput, MFU and peak memory on random-weight models of real shapes.

use std::path::PathBuf;

use anyhow::Context;
use gpu_runner::bench::{render_table, student, teacher, BenchRow};
use gpu_runner::io::AtomicFile;
use gpu_runner::teacher::new_model::Preset;
use gpu_runner::train::Forward;

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// f32, bf16 or f16.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Teacher shapes.
    #[arg(long, default_value = "qwen3-reranker-8b")]
    pub teacher_preset: Preset,
    /// Queries in the teacher workload.
    #[arg(long, default_value_t = 64)]
    pub queries: usize,
    /// Documents per query.
    #[arg(long, default_value_t = 30)]
    pub docs_per_query: usize,
    /// Tokens of the shared prompt prefix.
    #[arg(long, default_value_t = 61)]
    pub shared_len: usize,
    /// Pairs per teacher batch (comma-separated for several runs).
    #[arg(long, value_delimiter = ',', default_value = "240")]
    pub batch: Vec<usize>,
    /// Use the PyTorch reference's fixed shapes instead of StackOverflow titles: every query
    /// segment QUERY tokens and every pair's rest REST tokens, e.g. 16,20.
    #[arg(long, value_delimiter = ',', value_name = "QUERY,REST")]
    pub fixed_lengths: Option<Vec<usize>>,
    /// Workloads to run: teacher, student-train, student-infer.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "teacher,student-train,student-infer"
    )]
    pub workloads: Vec<Workload>,
    /// Triplets per student training step (comma-separated for several rows).
    #[arg(long, value_delimiter = ',', default_value = "16,128")]
    pub triplets: Vec<usize>,
    /// Pairs per student inference batch (comma-separated for several rows).
    #[arg(long, value_delimiter = ',', default_value = "256,1024")]
    pub student_batch: Vec<usize>,
    /// Timed steps (training) or batches (inference) per student row.
    #[arg(long, default_value_t = 10)]
    pub student_steps: usize,
    /// Also run the student workloads (first entry of --triplets and --student-batch) with the
    /// fused CUDA kernels off: candle's composed ops and the per-tensor AdamW.
    #[arg(long)]
    pub baseline: bool,
    /// Also run student training with positives and negatives in two forward passes (the
    /// reference trainer's `--forward separate`); the main rows use the trainer's default, one
    /// joint pass of 2T pairs on CUDA (PyTorch's benchmark shape).
    #[arg(long)]
    pub separate: bool,
    /// Also write the rows as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Qwen3-Reranker scoring (four prefix-reuse modes).
    Teacher,
    /// XLM-R large MarginMSE training steps.
    StudentTrain,
    /// XLM-R large bf16 scoring.
    StudentInfer,
}

/// Runs `bench` and prints the table.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let mut rows = Vec::new();
    if args.workloads.contains(&Workload::Teacher) {
        rows.extend(run_teacher(&args, &device)?);
    }
    rows.extend(run_student(&args, &device)?);
    print!("{}", render_table(&rows));
    if let Some(path) = &args.json {
        let mut file = AtomicFile::create(path)?;
        serde_json::to_writer_pretty(&mut file, &rows)?;
        file.commit()?;
    }
    Ok(())
}

/// One configuration of the student rows.
struct Variant {
    label: &'static str,
    /// Fused CUDA kernels on.
    fused: bool,
    /// bf16 inference takes the packed (padding-free) path.
    packed: bool,
    forward: Forward,
    triplets: Vec<usize>,
    batches: Vec<usize>,
}

/// The student rows: fused (default; training in the trainer's default forward for the device)
/// and, with `--separate`, training in two passes; with `--baseline`, inference on the padded
/// path and everything composed.
fn variants(args: &BenchArgs, device: &candle_core::Device) -> Vec<Variant> {
    let first = |v: &[usize]| v.first().map(|&x| vec![x]).unwrap_or_default();
    let main = Forward::Auto.resolve(device);
    let mut out = vec![Variant {
        label: if main == Forward::Joint {
            "fused-joint"
        } else {
            "fused"
        },
        fused: true,
        packed: true,
        forward: main,
        triplets: args.triplets.clone(),
        batches: args.student_batch.clone(),
    }];
    if args.separate && main != Forward::Separate {
        out.push(Variant {
            label: "fused-separate",
            fused: true,
            packed: true,
            forward: Forward::Separate,
            triplets: args.triplets.clone(),
            batches: Vec::new(),
        });
    }
    if args.baseline {
        out.push(Variant {
            label: "fused-padded",
            fused: true,
            packed: false,
            forward: main,
            triplets: Vec::new(),
            batches: first(&args.student_batch),
        });
        out.push(Variant {
            label: "composed",
            fused: false,
            packed: false,
            forward: main,
            triplets: first(&args.triplets),
            batches: first(&args.student_batch),
        });
    }
    out
}

fn run_student(args: &BenchArgs, device: &candle_core::Device) -> anyhow::Result<Vec<BenchRow>> {
    let train = args.workloads.contains(&Workload::StudentTrain);
    let infer = args.workloads.contains(&Workload::StudentInfer);
    let mut rows = Vec::new();
    for v in variants(args, device) {
        set_fused(v.fused, v.packed);
        let label = v.label;
        let opts = student::StudentBenchOptions {
            config: gpu_runner::student::xlm_roberta::Config::bge_reranker_v2_m3(),
            device: device.clone(),
            triplets: v.triplets,
            batches: v.batches,
            steps: args.student_steps,
            label: label.into(),
            joint: v.forward == Forward::Joint,
            seed: 0,
        };
        if train && !opts.triplets.is_empty() {
            let (train_rows, traces) =
                student::train(&opts).context("student training benchmark")?;
            for (r, t) in train_rows.iter().zip(traces) {
                println!(
                    "student-train {label} {} triplets/step: MarginMSE {:.4} -> {:.4}, grad norm {:.3} -> {:.3} \
                     (first -> last timed step); host ms/step: forward {:.1}, backward {:.1}, \
                     norm+AdamW {:.1}, loss read {:.1}",
                    r.batch, t.loss.0, t.loss.1, t.grad_norm.0, t.grad_norm.1, t.ms[0], t.ms[1], t.ms[2], t.ms[3]
                );
            }
            rows.extend(train_rows);
        }
        if infer && !opts.batches.is_empty() {
            rows.extend(student::infer(&opts).context("student inference benchmark")?);
        }
    }
    set_fused(true, true);
    Ok(rows)
}

#[cfg(feature = "cuda")]
fn set_fused(on: bool, packed: bool) {
    gpu_runner::kernels::set_enabled(on);
    gpu_runner::kernels::infer::set_packed(packed);
}

#[cfg(not(feature = "cuda"))]
fn set_fused(_on: bool, _packed: bool) {}

fn run_teacher(args: &BenchArgs, device: &candle_core::Device) -> anyhow::Result<Vec<BenchRow>> {
    let dtype = gpu_runner::teacher::parse_dtype(&args.dtype)?;
    let fixed_lengths = match args.fixed_lengths.as_deref() {
        None => None,
        Some(&[query, rest]) => Some((query, rest)),
        Some(other) => anyhow::bail!("--fixed-lengths takes QUERY,REST, got {other:?}"),
    };
    let mut rows = Vec::new();
    for &batch in &args.batch {
        let opts = teacher::TeacherBenchOptions {
            preset: args.teacher_preset,
            dtype,
            device: device.clone(),
            queries: args.queries,
            docs_per_query: args.docs_per_query,
            shared_len: args.shared_len,
            batch,
            seed: 0,
            fixed_lengths,
        };
        let report = teacher::run(&opts).context("teacher benchmark")?;
        println!(
            "teacher {} {} batch {batch}{}: mean prompt {:.1} tokens; max |score - no_reuse|: {}",
            args.teacher_preset,
            args.dtype,
            if opts.fixed_lengths.is_some() {
                " (fixed lengths)"
            } else {
                ""
            },
            report.mean_prompt_len,
            report
                .max_diff
                .iter()
                .map(|(m, d)| format!("{m} {d:.3e}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        rows.extend(report.rows);
    }
    Ok(rows)
}
