//! Artifact listing and downloads, confined to the artifact root.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use distillery_api::Artifact;

use super::ApiPath;
use crate::error::AppError;
use crate::store::ArtifactContent;
use crate::AppState;

pub async fn artifacts_list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<Artifact>>, AppError> {
    state.store.get_run(id).await?;
    Ok(Json(state.store.list_artifacts(id).await?))
}

/// Resolves `relative` under `root`, following symlinks, and refuses anything that lands
/// outside it.
pub fn confine(root: &Path, relative: &str) -> Result<PathBuf, AppError> {
    crate::reports::check_relative_path(relative)?;
    let root = root
        .canonicalize()
        .map_err(|e| AppError::Internal(format!("artifact root {}: {e}", root.display())))?;
    let full = root
        .join(relative)
        .canonicalize()
        .map_err(|_| AppError::NotFound(format!("artifact file {relative:?}")))?;
    if !full.starts_with(&root) {
        tracing::warn!(
            path = relative,
            "artifact download outside the artifact root rejected"
        );
        return Err(AppError::Forbidden(
            "artifact path is outside the artifact root".into(),
        ));
    }
    Ok(full)
}

pub async fn artifacts_download(
    State(state): State<AppState>,
    axum::Extension(settings): axum::Extension<crate::Settings>,
    ApiPath((run_id, artifact_id)): ApiPath<(i64, i64)>,
) -> Result<Response, AppError> {
    let (artifact, content) = state.store.artifact_content(artifact_id).await?;
    if artifact.run_id != run_id {
        return Err(AppError::NotFound(format!(
            "artifact {artifact_id} of run {run_id}"
        )));
    }
    let bytes = match content {
        ArtifactContent::Stored(bytes) => bytes,
        ArtifactContent::Path(relative) => {
            let full = confine(&settings.artifact_root, &relative)?;
            tokio::fs::read(&full)
                .await
                .map_err(|_| AppError::NotFound(format!("artifact file {relative:?}")))?
        }
    };
    let name = artifact
        .path
        .as_deref()
        .and_then(|p| Path::new(p).file_name())
        .and_then(|n| n.to_str())
        .map(|n| n.replace('"', ""))
        .unwrap_or_else(|| format!("artifact-{artifact_id}"));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}
