//! Subcommands of the `gpu-runner` binary: each module holds one clap args struct and its
//! handler, which only parses, calls the library and prints.

pub mod bench;
pub mod bench_triplets;
pub mod compare;
pub mod data_stats;
pub mod demo_data;
pub mod metrics;
pub mod new_model;
pub mod pipeline;
pub mod predict;
pub mod score;
pub mod student_parity;
pub mod teacher_parity;
pub mod train;
pub mod triplets;
pub mod work;
