//! The pipeline stages of Distillery and the device code that runs them.
//!
//! Brief overview: each module is one domain concept of the reference pipeline
//! (teacher → triplets → student → before/after evaluation). The `gpu-runner` binary is a thin
//! CLI over this library with one subcommand per stage.
//!
//! The pure (CPU, model-free) half of the pipeline:
//! - [`data`]: MTEB reranking samples ([`data::Sample`], [`data::read_samples`]) and their
//!   flattened pair order;
//! - [`scores`]: teacher-score files ([`scores::ScoreRecord`], [`scores::ScoreWriter`]);
//! - [`triplets`]: margin triplets exactly as the reference `create_triplets.py`;
//! - [`metrics`]: MAP, MRR@k and NDCG@k with sentence-transformers v5 semantics, per query;
//! - [`compare`]: paired before/after changes with bootstrap CIs and randomization tests;
//! - [`hf_config`]: Hugging Face `config.json` in the transformers 4.x and 5.x forms, mapped to
//!   one form before the model families' typed configs read it;
//! - [`jsonl`]: streamed `.jsonl`/`.jsonl.gz` reading and Python-`json.dumps`-compatible writing.
//!
//! Architecture invariant: the library never prints to stdout and never exits the process;
//! errors are values of [`Error`], and the binary decides how to report them.

pub mod bench;
pub mod compare;
pub mod cuda_mem;
pub mod data;
pub mod demo;
pub mod device;
pub mod error;
pub mod hf_config;
pub mod io;
pub mod jsonl;
#[cfg(feature = "cuda")]
pub mod kernels;
pub mod metrics;
pub mod observe;
pub mod pipeline;
pub mod schedule;
pub mod scores;
pub mod student;
pub mod teacher;
pub mod train;
pub mod triplets;
pub mod worker;

pub use error::{Error, Result};
