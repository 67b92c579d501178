//! The pipeline stages of Distillery and the device code that runs them.
//!
//! Brief overview: each module is one domain concept of the reference pipeline
//! (teacher → triplets → student → before/after evaluation). The `gpu-runner` binary is a thin
//! CLI over this library with one subcommand per stage.
//!
//! Architecture invariant: the library never prints to stdout and never exits the process;
//! errors are values of [`Error`], and the binary decides how to report them.

pub mod bench;
pub mod cuda_mem;
pub mod data;
pub mod device;
pub mod error;
pub mod io;
pub mod jsonl;
pub mod scores;
pub mod teacher;

pub use error::{Error, Result};
