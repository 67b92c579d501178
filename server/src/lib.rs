//! Distillery's server: the experiment store, the job queue for gpu-runners, and the dashboard.
//!
//! Brief overview: [`Store`](store::Store) owns the database (SQLite or PostgreSQL);
//! [`queue`] leases stage jobs to runners and [`reports`] records what they send back;
//! [`events`] broadcasts changes that [`routes`] serves as SSE; [`auth`] decides who may do
//! what; [`series`] downsamples curves and [`export`] writes CSV. [`app`] assembles the router
//! that also serves the built WASM dashboard with an SPA fallback.

pub mod auth;
pub mod bench;
pub mod error;
pub mod events;
pub mod export;
pub mod logs;
pub mod queue;
pub mod reports;
pub mod routes;
pub mod series;
pub mod shards;
pub mod store;

use std::any::Any;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

pub use auth::AuthMode;
pub use error::AppError;
pub use store::Store;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
}

/// How the server is configured, available to handlers as an `Extension`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub auth: AuthMode,
    /// Artifact paths are relative to this directory; downloads never leave it.
    pub artifact_root: PathBuf,
}

impl Default for Settings {
    /// `--auth none` and an artifact directory of its own under the system's temporary
    /// directory (the binary passes its `--data-dir`'s; an embedded or test server never writes
    /// into its working directory, nor shares artifacts with another instance).
    fn default() -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Settings {
            auth: AuthMode::None,
            artifact_root: std::env::temp_dir().join(format!(
                "distillery-artifacts-{}-{nanos}-{n}",
                std::process::id()
            )),
        }
    }
}

/// Largest accepted request body (metric batches are the biggest legitimate ones).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// [`app_with`] under the default [`Settings`] (`--auth none`).
pub fn app(state: AppState, dist: Option<PathBuf>) -> Router {
    app_with(state, Settings::default(), dist)
}

/// Builds the whole router: the API, and the dashboard's static files from `dist` if given.
pub fn app_with(state: AppState, settings: Settings, dist: Option<PathBuf>) -> Router {
    let api = routes::api(state.clone()).layer(axum::middleware::map_response(json_client_errors));
    let mut router = Router::new().nest(distillery_api::API_PREFIX, api);
    if let Some(dist) = dist {
        let index = dist.join("index.html");
        router = router.fallback_service(ServeDir::new(dist).fallback(ServeFile::new(index)));
    }
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::Extension(settings))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Gives a JSON `{error}` body to any API error response that lacks one (e.g. axum's 405).
async fn json_client_errors(resp: Response<Body>) -> Response<Body> {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let message = status.canonical_reason().unwrap_or("error").to_lowercase();
    AppError::Rejected { status, message }.into_response()
}

/// A panic is a bug: log it and answer a JSON 500.
fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    tracing::error!(panic = %detail, "handler panicked");
    AppError::Rejected {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: "something went wrong".into(),
    }
    .into_response()
}
