//! Distillery's server: the experiment store, the job queue for gpu-runners, and the dashboard.
//!
//! Brief overview: [`Store`](store::Store) owns the database (SQLite or PostgreSQL),
//! [`routes`] serves the REST API under `/api/v1`, and [`app`] assembles the router that
//! also serves the built WASM dashboard with an SPA fallback.

pub mod error;
pub mod routes;
pub mod store;

use std::path::PathBuf;

use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

pub use error::AppError;
pub use store::Store;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
}

/// Largest accepted request body (metric batches are the biggest legitimate ones).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Builds the whole router: the API, and the dashboard's static files from `dist` if given.
pub fn app(state: AppState, dist: Option<PathBuf>) -> Router {
    let mut router = Router::new().nest(distillery_api::API_PREFIX, routes::api());
    if let Some(dist) = dist {
        let index = dist.join("index.html");
        router = router.fallback_service(ServeDir::new(dist).fallback(ServeFile::new(index)));
    }
    router
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
