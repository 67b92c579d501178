//! REST handlers under `/api/v1`, named `resource_action`, one module per resource.
//!
//! Every extractor here rejects with the [`AppError`] JSON shape: [`ApiJson`], [`ApiPath`] and
//! [`ApiQuery`] wrap axum's `Json`, `Path` and `Query`.

pub mod artifacts;
mod auth;

pub use auth::check_new_user;
mod compare;
mod events;
mod export;
mod jobs;
mod logs;
mod runners;
mod runs;
mod series;
mod shards;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::middleware;
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use distillery_api::{Experiment, Health, NewExperiment};
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::AppState;

/// The `/api/v1` router: public routes (health, login) and everything else behind
/// [`crate::auth::authorize`].
pub fn api(state: AppState) -> Router<AppState> {
    let protected = Router::new()
        .route(
            "/experiments",
            get(experiments_list).post(experiments_create),
        )
        .route(
            "/experiments/{id}",
            get(experiments_read).delete(experiments_delete),
        )
        .route("/runs", get(runs::runs_list).post(runs::runs_create))
        .route("/runs/{id}", get(runs::runs_read).delete(runs::runs_delete))
        .route("/runs/{id}/cancel", post(runs::runs_cancel))
        .route("/runs/{id}/stages", get(runs::stages_list))
        .route("/runs/{id}/evals", get(runs::evals_list))
        .route("/runs/{id}/queries", get(compare::queries_list))
        .route("/runs/{id}/queries/{query_id}", get(compare::queries_read))
        .route("/runs/{id}/metrics", get(runs::metric_table))
        .route("/runs/{id}/artifacts", get(artifacts::artifacts_list))
        .route(
            "/runs/{id}/artifacts/{artifact_id}",
            get(artifacts::artifacts_download),
        )
        .route("/runs/{id}/jobs", get(shards::jobs_list))
        .route(
            "/runs/{id}/shards/{kind}/{index}",
            get(shards::shards_download),
        )
        .route("/runs/{id}/series", get(series::series_read))
        .route("/runs/{id}/series/names", get(series::series_names))
        .route("/runs/{id}/events", get(events::events_run))
        .route("/runs/{id}/share", post(auth::share_create))
        .route("/runs/{id}/export/metrics.csv", get(export::export_metrics))
        .route("/runs/{id}/export/curves.csv", get(export::export_curves))
        .route("/runs/{id}/export/queries.csv", get(export::export_queries))
        .route("/export/runs.csv", get(export::export_runs))
        .route("/events", get(events::events_all))
        .route(
            "/runners",
            get(runners::runners_list).post(runners::runners_register),
        )
        .route("/runners/{id}/heartbeat", post(runners::runners_heartbeat))
        .route("/runners/{id}/claim", post(runners::runners_claim))
        .route("/jobs/{id}", get(jobs::jobs_read))
        .route("/jobs/{id}/progress", post(jobs::jobs_progress))
        .route("/jobs/{id}/metrics", post(jobs::jobs_metrics))
        .route("/jobs/{id}/queries", post(compare::jobs_queries))
        .route("/jobs/{id}/comparison", post(compare::jobs_comparison))
        .route("/jobs/{id}/artifacts", post(jobs::jobs_artifacts))
        .route("/jobs/{id}/shard", put(shards::jobs_shard_upload))
        .route("/jobs/{id}/complete", post(jobs::jobs_complete))
        .route("/jobs/{id}/fail", post(jobs::jobs_fail))
        .route("/jobs/{id}/logs", post(logs::jobs_logs))
        .route("/jobs/{id}/release", post(logs::jobs_release))
        .route("/runs/{id}/logs", get(logs::logs_tail))
        .route("/auth/me", get(auth::auth_me))
        .route("/auth/logout", post(auth::auth_logout))
        .route("/users", get(auth::users_list).post(auth::users_create))
        .route("/users/{id}", patch(auth::users_update))
        .route("/tokens", get(auth::tokens_list).post(auth::tokens_create))
        .route("/tokens/{id}", delete(auth::tokens_revoke))
        .route_layer(middleware::from_fn_with_state(
            state,
            crate::auth::authorize,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/auth/login", post(auth::auth_login))
        .merge(protected)
        .fallback(|| async { AppError::NotFound("endpoint".into()) })
}

/// A JSON body extractor whose rejections use the [`AppError`] shape (413 for oversize
/// bodies, 415 without a JSON content type, 400 or 422 for bad JSON).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(AppError::Rejected {
                status: rejection.status(),
                message: rejection.body_text(),
            }),
        }
    }
}

/// A path extractor whose rejections are JSON 400s.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> AppError {
    AppError::Rejected {
        status: axum::http::StatusCode::BAD_REQUEST,
        message: rejection.body_text(),
    }
}

/// A query-string extractor whose rejections are JSON 400s.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> AppError {
    AppError::Rejected {
        status: axum::http::StatusCode::BAD_REQUEST,
        message: rejection.body_text(),
    }
}

/// Checks a list's `limit` (1 to 1000) and `offset` (not negative).
fn check_page(limit: i64, offset: i64) -> Result<(), AppError> {
    if !(1..=1000).contains(&limit) {
        return Err(AppError::bad("limit", "must be between 1 and 1000"));
    }
    if offset < 0 {
        return Err(AppError::bad("offset", "must not be negative"));
    }
    Ok(())
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: state.store.backend().name().into(),
    })
}

async fn experiments_list(
    State(state): State<AppState>,
) -> Result<Json<Vec<Experiment>>, AppError> {
    Ok(Json(state.store.list_experiments().await?))
}

async fn experiments_create(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewExperiment>,
) -> Result<Json<Experiment>, AppError> {
    if new.name.trim().is_empty() {
        return Err(AppError::bad("name", "must not be empty"));
    }
    Ok(Json(state.store.create_experiment(&new).await?))
}

async fn experiments_read(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Experiment>, AppError> {
    Ok(Json(state.store.get_experiment(id).await?))
}

async fn experiments_delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, AppError> {
    state.store.delete_experiment(id).await?;
    Ok(Json(serde_json::json!({ "deleted": id })))
}
