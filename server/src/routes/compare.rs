//! What the compare stage produces: a run's per-query list sorted by a metric's change, one
//! query's detail, and the runner's uploads of query details and of the paired comparison.

use axum::extract::State;
use axum::Json;
use distillery_api::{
    ComparisonReport, Page, QueryDetail, QueryDetailAck, QueryDetailBatch, QueryDiff,
};
use serde::Deserialize;

use super::{ApiJson, ApiPath, ApiQuery};
use crate::error::AppError;
use crate::store::QueryMetric;
use crate::AppState;

/// Query string of `GET /runs/{id}/queries`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    /// `delta_desc` (default: most improved first) or `delta_asc` (most regressed first).
    order: Option<String>,
    /// `ndcg` (default), `ap` or `rr`.
    metric: Option<String>,
}

fn default_limit() -> i64 {
    25
}

pub async fn queries_list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<Page<QueryDiff>>, AppError> {
    super::check_page(p.limit, p.offset)?;
    let descending = match p.order.as_deref() {
        None | Some("delta_desc") => true,
        Some("delta_asc") => false,
        Some(_) => return Err(AppError::bad("order", "must be delta_desc or delta_asc")),
    };
    let metric = match p.metric.as_deref() {
        None => QueryMetric::Ndcg,
        Some(m) => QueryMetric::parse(m)
            .ok_or_else(|| AppError::bad("metric", "must be ndcg, ap or rr"))?,
    };
    state.store.get_run(id).await?;
    let (items, total) = state
        .store
        .list_query_diffs(id, metric, descending, p.limit, p.offset)
        .await?;
    Ok(Json(Page { items, total }))
}

pub async fn queries_read(
    State(state): State<AppState>,
    ApiPath((id, query_id)): ApiPath<(i64, String)>,
) -> Result<Json<QueryDetail>, AppError> {
    state.store.get_run(id).await?;
    Ok(Json(state.store.query_detail(id, &query_id).await?))
}

pub async fn jobs_queries(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(batch): ApiJson<QueryDetailBatch>,
) -> Result<Json<QueryDetailAck>, AppError> {
    let received = state.store.report_query_details(id, &batch).await?;
    Ok(Json(QueryDetailAck { received }))
}

pub async fn jobs_comparison(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(c): ApiJson<ComparisonReport>,
) -> Result<Json<serde_json::Value>, AppError> {
    state.store.report_comparison(id, &c).await?;
    Ok(Json(serde_json::json!({ "stored": c.metrics.len() })))
}
