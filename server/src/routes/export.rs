//! CSV downloads.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::runs::ListParams;
use super::{ApiPath, ApiQuery};
use crate::error::AppError;
use crate::export;
use crate::AppState;

fn csv_response(filename: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Every run matching the run list's filters, in its order (newest first by default); `limit`
/// and `offset` are ignored.
pub async fn export_runs(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Response, AppError> {
    let filter = p.filter()?;
    let (sort, descending) = p.order()?;
    let mut runs = Vec::new();
    loop {
        let (page, total) = state
            .store
            .list_runs(&filter, sort, descending, 1000, runs.len() as i64)
            .await?;
        let done = page.is_empty();
        runs.extend(page);
        if done || runs.len() as i64 >= total {
            break;
        }
    }
    Ok(csv_response("runs.csv", export::runs_csv(&runs)))
}

pub async fn export_metrics(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, AppError> {
    state.store.get_run(id).await?;
    let rows = state.store.metric_rows(id).await?;
    Ok(csv_response(
        &format!("run-{id}-metrics.csv"),
        export::metrics_csv(&rows),
    ))
}

pub async fn export_curves(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, AppError> {
    state.store.get_run(id).await?;
    let loss = state.store.series_points(id, "loss").await?;
    let lr = state.store.series_points(id, "lr").await?;
    let body = export::curves_csv((&loss.0, &loss.1), (&lr.0, &lr.1));
    Ok(csv_response(&format!("run-{id}-curves.csv"), body))
}

pub async fn export_queries(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, AppError> {
    state.store.get_run(id).await?;
    let results = state.store.list_query_results(id).await?;
    Ok(csv_response(
        &format!("run-{id}-queries.csv"),
        export::queries_csv(&results),
    ))
}
