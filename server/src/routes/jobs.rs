//! Reports on a leased job: progress, metric batches, artifacts, complete, fail.

use axum::extract::State;
use axum::Json;
use distillery_api::{
    ArtifactReport, CompleteJob, FailJob, JobState, MetricBatch, MetricBatchAck, ProgressReport,
};

use super::{ApiJson, ApiPath};
use crate::error::AppError;
use crate::AppState;

pub async fn jobs_read(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<JobState>, AppError> {
    Ok(Json(state.store.job_state(id).await?))
}

pub async fn jobs_progress(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<ProgressReport>,
) -> Result<Json<JobState>, AppError> {
    state.store.report_progress(id, &r).await?;
    Ok(Json(state.store.job_state(id).await?))
}

pub async fn jobs_metrics(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<MetricBatch>,
) -> Result<Json<MetricBatchAck>, AppError> {
    Ok(Json(state.store.report_metrics(id, &b).await?))
}

pub async fn jobs_artifacts(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(a): ApiJson<ArtifactReport>,
) -> Result<Json<serde_json::Value>, AppError> {
    let artifact_id = state.store.report_artifact(id, &a).await?;
    Ok(Json(serde_json::json!({ "id": artifact_id })))
}

pub async fn jobs_complete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(c): ApiJson<CompleteJob>,
) -> Result<Json<JobState>, AppError> {
    state.store.complete_job(id, &c).await?;
    Ok(Json(state.store.job_state(id).await?))
}

pub async fn jobs_fail(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(f): ApiJson<FailJob>,
) -> Result<Json<JobState>, AppError> {
    state.store.fail_job(id, &f).await?;
    Ok(Json(state.store.job_state(id).await?))
}
