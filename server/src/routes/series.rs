//! `GET /runs/{id}/series?name=loss&max_points=2000`: a downsampled metric series.

use axum::extract::State;
use axum::Json;
use distillery_api::Series;
use serde::Deserialize;

use super::{ApiPath, ApiQuery};
use crate::error::AppError;
use crate::series::{downsample, DEFAULT_MAX_POINTS, LIMIT_MAX_POINTS};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct SeriesParams {
    name: String,
    max_points: Option<usize>,
}

pub async fn series_read(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<SeriesParams>,
) -> Result<Json<Series>, AppError> {
    let max_points = p.max_points.unwrap_or(DEFAULT_MAX_POINTS);
    if !(2..=LIMIT_MAX_POINTS).contains(&max_points) {
        return Err(AppError::bad(
            "max_points",
            format!("must be between 2 and {LIMIT_MAX_POINTS}"),
        ));
    }
    state.store.get_run(id).await?;
    let (total_points, steps, values) =
        state.store.series_extremes(id, &p.name, max_points).await?;
    // Ties and uneven step ranges may leave a few points too many.
    let (steps, values) = downsample(&steps, &values, max_points);
    Ok(Json(Series {
        run_id: id,
        name: p.name,
        total_points,
        steps,
        values,
    }))
}

pub async fn series_names(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<String>>, AppError> {
    state.store.get_run(id).await?;
    Ok(Json(state.store.series_names(id).await?))
}
