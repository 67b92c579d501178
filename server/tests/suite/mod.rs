//! The API suite's areas, one module each.

mod auth;
mod events;
mod export;
mod queue;
mod series;
