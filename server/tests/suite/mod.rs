//! The API suite's areas, one module each.

mod auth;
mod cli;
mod events;
mod export;
mod queries;
mod queue;
mod run_list;
mod runners;
mod series;
mod shards;
mod stream;
mod team;
