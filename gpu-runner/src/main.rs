//! `gpu-runner`: one subcommand per pipeline stage, plus device information.

mod cli;

use clap::{Parser, Subcommand};

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
    /// Write a random-weight model in the Hugging Face layout.
    NewModel(cli::new_model::NewModelArgs),
    /// Train the student with MarginMSE on teacher triplets.
    Train(cli::train::TrainArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info { device } => {
            let dev = gpu_runner::device::parse_device(&device)?;
            println!("gpu-runner {}", env!("CARGO_PKG_VERSION"));
            println!("cuda support: {}", candle_core::utils::cuda_is_available());
            println!("device: {}", gpu_runner::device::describe(&dev));
            Ok(())
        }
        Command::NewModel(args) => cli::new_model::run(args),
        Command::Train(args) => cli::train::run(args),
    }
}
