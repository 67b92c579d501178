//! Subcommands of the `gpu-runner` binary: one module per subcommand, each with its clap
//! arguments and its handler.

pub mod new_model;
pub mod train;
