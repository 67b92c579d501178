//! REST handlers under `/api/v1`, named `resource_action`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use distillery_api::{Experiment, Health, NewExperiment, NewRun, Page, Run, Stage};
use serde::Deserialize;

use crate::error::AppError;
use crate::AppState;

/// The `/api/v1` router.
pub fn api() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route(
            "/experiments",
            get(experiments_list).post(experiments_create),
        )
        .route("/runs", get(runs_list).post(runs_create))
        .route("/runs/{id}", get(runs_read))
        .route("/runs/{id}/stages", get(stages_list))
        .fallback(|| async { AppError::NotFound("endpoint".into()) })
}

/// A JSON body extractor whose rejections use the [`AppError`] shape.
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
            Err(rejection) => Err(AppError::BadRequest {
                message: rejection.body_text(),
                field: None,
            }),
        }
    }
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

#[derive(Debug, Deserialize)]
struct ListParams {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

async fn runs_list(
    State(state): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<Json<Page<Run>>, AppError> {
    if !(1..=1000).contains(&p.limit) {
        return Err(AppError::bad("limit", "must be between 1 and 1000"));
    }
    if p.offset < 0 {
        return Err(AppError::bad("offset", "must not be negative"));
    }
    let (items, total) = state.store.list_runs(p.limit, p.offset).await?;
    Ok(Json(Page { items, total }))
}

async fn runs_create(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewRun>,
) -> Result<Json<Run>, AppError> {
    if let Err(errs) = new.config.validate() {
        let first = &errs[0];
        return Err(AppError::bad(&first.field, first.message.clone()));
    }
    Ok(Json(state.store.create_run(&new).await?))
}

async fn runs_read(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Run>, AppError> {
    Ok(Json(state.store.get_run(id).await?))
}

async fn stages_list(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Stage>>, AppError> {
    state.store.get_run(id).await?;
    Ok(Json(state.store.list_stages(id).await?))
}
