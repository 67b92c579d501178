//! `gpu-runner`: one subcommand per pipeline stage, plus device information.

use clap::{Parser, Subcommand};
use tracing_subscriber::Layer;

mod cli;

/// Distillery's pipeline runner: teacher scoring, triplets, student training and evaluation.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version, the build's features and the chosen device.
    Info {
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Score every (query, passage) pair of a data file with the teacher.
    Score(cli::score::ScoreArgs),
    /// Run every stage of a run configuration (TOML) into a run directory, reusing finished stages.
    Pipeline(cli::pipeline::PipelineArgs),
    /// Claim and run stage jobs from a Distillery server.
    Work(cli::work::WorkArgs),
    /// Write the synthetic demo dataset (train and held-out test splits, MTEB format).
    DemoData(cli::demo_data::DemoDataArgs),
    /// Print load-time statistics of an MTEB reranking file as JSON.
    DataStats(cli::data_stats::DataStatsArgs),
    /// Build margin triplets from a teacher-score file (the reference create_triplets.py).
    Triplets(cli::triplets::TripletsArgs),
    /// Time the triplets stage on a synthetic score file.
    BenchTriplets(cli::bench_triplets::BenchTripletsArgs),
    /// MAP, MRR@k and NDCG@k of a score file (sentence-transformers v5 semantics).
    Metrics(cli::metrics::MetricsArgs),
    /// Paired before/after comparison with bootstrap CIs and randomization-test p-values.
    Compare(cli::compare::CompareArgs),
    /// Write a random-weight model in the Hugging Face layout.
    NewModel(cli::new_model::NewModelArgs),
    /// Train the student with MarginMSE on teacher triplets.
    Train(cli::train::TrainArgs),
    /// Score every pair of a reranking file with a student model (raw logits).
    Predict(cli::predict::PredictArgs),
    /// Check the teacher against its transformers parity goldens on any device and dtype.
    TeacherParity(cli::teacher_parity::TeacherParityArgs),
    /// Check the student against its parity goldens, gradients and a short training run on any
    /// device and dtype (on CUDA also every fused kernel against its composed op).
    StudentParity(cli::student_parity::StudentParityArgs),
    /// Measure the pipeline's stages on generated inputs of the real shapes (random weights).
    Bench(cli::bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = gpu_runner::worker::logs::LogCapture::default();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                ),
        )
        .with(logs.clone())
        .init();
    match run(Cli::parse(), logs) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(cli: Cli, logs: gpu_runner::worker::logs::LogCapture) -> anyhow::Result<()> {
    match cli.command {
        Command::Info { device } => {
            let dev = gpu_runner::device::parse_device(&device)?;
            println!("gpu-runner {}", env!("CARGO_PKG_VERSION"));
            println!("cuda support: {}", candle_core::utils::cuda_is_available());
            println!("device: {}", gpu_runner::device::describe(&dev));
            Ok(())
        }
        Command::Score(args) => cli::score::run(args),
        Command::Pipeline(args) => cli::pipeline::run(args),
        Command::Work(args) => cli::work::run(args, logs),
        Command::DemoData(args) => cli::demo_data::run(args),
        Command::DataStats(args) => cli::data_stats::run(args),
        Command::Triplets(args) => cli::triplets::run(args),
        Command::BenchTriplets(args) => cli::bench_triplets::run(args),
        Command::Metrics(args) => cli::metrics::run(args),
        Command::Compare(args) => cli::compare::run(args),
        Command::NewModel(args) => cli::new_model::run(args),
        Command::Train(args) => cli::train::run(args),
        Command::Predict(args) => cli::predict::run(args),
        Command::TeacherParity(args) => cli::teacher_parity::run(args),
        Command::StudentParity(args) => cli::student_parity::run(args),
        Command::Bench(args) => cli::bench::run_bench(args),
    }
}
