//! The API suite's areas, one module each.

mod auth;
mod cli;
mod events;
mod export;
mod queue;
mod series;
mod stream;
mod team;
