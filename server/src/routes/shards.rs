//! Teacher-score shards: a shard job's upload, the download of a finished shard, and a run's
//! job list (which runner took which shard).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use distillery_api::{RunJob, ShardStored, StageKind, LEASE_HEADER};

use super::ApiPath;
use crate::error::AppError;
use crate::shards::{file_body, shard_file, stage_shard_body};
use crate::{AppState, Settings};

/// `PUT /jobs/{id}/shard`: the raw score file of a leased shard job, its lease in the
/// [`LEASE_HEADER`] header. Idempotent: a retry replaces the file; an upload whose lease ran
/// out meanwhile is refused (409) and leaves the stored file alone.
pub async fn jobs_shard_upload(
    State(state): State<AppState>,
    axum::Extension(settings): axum::Extension<Settings>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ShardStored>, AppError> {
    let lease = headers
        .get(LEASE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AppError::bad("lease", format!("the {LEASE_HEADER} header is required")))?
        .to_string();
    let (job, shard) = state.store.leased_shard(id, &lease).await?;
    let relative = shard_file(job.run_id, job.kind, shard);
    let staged = stage_shard_body(&settings.artifact_root, &relative, body).await?;
    if let Err(e) = state
        .store
        .record_shard(id, &lease, &relative, &staged)
        .await
    {
        staged.discard().await;
        return Err(e);
    }
    let stored = staged.stored;
    tracing::info!(
        job = id,
        run = job.run_id,
        stage = job.kind.as_str(),
        shard = shard.index,
        of = shard.count,
        bytes = stored.size_bytes,
        "shard stored"
    );
    Ok(Json(stored))
}

/// `GET /runs/{id}/shards/{kind}/{index}`: the score file of a finished shard.
pub async fn shards_download(
    State(state): State<AppState>,
    axum::Extension(settings): axum::Extension<Settings>,
    ApiPath((run_id, kind, index)): ApiPath<(i64, String, i64)>,
) -> Result<Response, AppError> {
    let kind = StageKind::parse(&kind)
        .filter(|k| k.is_teacher_scoring())
        .ok_or_else(|| AppError::bad("kind", "must be score_train or score_test"))?;
    let shard = state.store.finished_shard(run_id, kind, index).await?;
    let path = settings.artifact_root.join(shard_file(run_id, kind, shard));
    let body = file_body(&path).await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// `GET /runs/{id}/jobs`: the run's jobs with their shard, status and runner.
pub async fn jobs_list(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<i64>,
) -> Result<Json<Vec<RunJob>>, AppError> {
    Ok(Json(state.store.run_jobs(run_id).await?))
}
