//! What a runner streams beyond the job reports: stage log lines (and their tail), and the
//! release of a job it stops working on.

use axum::extract::State;
use axum::Json;
use distillery_api::{JobState, LogBatch, ReleaseJob, StageKind, StageLogLine};
use serde::Deserialize;

use super::{ApiJson, ApiPath, ApiQuery};
use crate::error::AppError;
use crate::AppState;

/// Query string of `GET /runs/{id}/logs`.
#[derive(Debug, Deserialize)]
pub struct TailParams {
    /// A stage kind, e.g. `train` (all stages when absent).
    stage: Option<String>,
    #[serde(default = "default_tail")]
    tail: i64,
}

fn default_tail() -> i64 {
    200
}

pub async fn jobs_logs(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<LogBatch>,
) -> Result<Json<serde_json::Value>, AppError> {
    let inserted = state.store.report_logs(id, &b).await?;
    Ok(Json(
        serde_json::json!({ "received": b.lines.len(), "inserted": inserted }),
    ))
}

pub async fn jobs_release(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<ReleaseJob>,
) -> Result<Json<JobState>, AppError> {
    state.store.release_job(id, &r).await?;
    Ok(Json(state.store.job_state(id).await?))
}

pub async fn logs_tail(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<TailParams>,
) -> Result<Json<Vec<StageLogLine>>, AppError> {
    let stage = match p.stage.as_deref() {
        None | Some("") => None,
        Some(s) => {
            Some(StageKind::parse(s).ok_or_else(|| AppError::bad("stage", "unknown stage kind"))?)
        }
    };
    Ok(Json(state.store.run_logs(id, stage, p.tail).await?))
}
