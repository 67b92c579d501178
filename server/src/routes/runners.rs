//! Runner endpoints: register, heartbeat, claim.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use distillery_api::{ClaimRequest, RegisterRunner, Runner, RunnerStatus};

use super::{ApiJson, ApiPath};
use crate::error::AppError;
use crate::AppState;

/// Every runner with its current job.
pub async fn runners_list(
    State(state): State<AppState>,
) -> Result<Json<Vec<RunnerStatus>>, AppError> {
    Ok(Json(state.store.runner_statuses().await?))
}

pub async fn runners_register(
    State(state): State<AppState>,
    ApiJson(r): ApiJson<RegisterRunner>,
) -> Result<Json<Runner>, AppError> {
    if r.name.trim().is_empty() || r.name.len() > 128 {
        return Err(AppError::bad("name", "must be 1 to 128 characters"));
    }
    if r.memory_bytes < 0 {
        return Err(AppError::bad("memory_bytes", "must not be negative"));
    }
    Ok(Json(state.store.register_runner(&r).await?))
}

pub async fn runners_heartbeat(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, AppError> {
    state.store.heartbeat(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 200 with a [`distillery_api::Job`], or 204 when nothing is ready.
pub async fn runners_claim(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> Result<Response, AppError> {
    Ok(match state.store.claim(id, &req).await? {
        Some(job) => Json(job).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}
