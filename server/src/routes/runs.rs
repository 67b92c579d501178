//! Runs: launch, read, list with filters and sorting, delete, cancel, and what they produced.

use axum::extract::State;
use axum::Json;
use distillery_api::{EvalResult, MetricRow, NewRun, Page, Run, Stage, Status};
use serde::Deserialize;

use super::{ApiJson, ApiPath, ApiQuery};
use crate::error::AppError;
use crate::store::{RunFilter, RunMetric, RunSort};
use crate::AppState;

/// Query string of `GET /runs` and `GET /export/runs.csv`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    #[serde(default = "default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
    status: Option<String>,
    /// One tag, or several separated by commas (a run must carry all).
    tag: Option<String>,
    teacher: Option<String>,
    student: Option<String>,
    dataset: Option<String>,
    experiment_id: Option<i64>,
    map_min: Option<f64>,
    map_max: Option<f64>,
    mrr_min: Option<f64>,
    mrr_max: Option<f64>,
    ndcg_min: Option<f64>,
    ndcg_max: Option<f64>,
    map_delta_min: Option<f64>,
    map_delta_max: Option<f64>,
    mrr_delta_min: Option<f64>,
    mrr_delta_max: Option<f64>,
    ndcg_delta_min: Option<f64>,
    ndcg_delta_max: Option<f64>,
    /// `created` (default), `name`, `status`, `map`, `mrr`, `ndcg`, `map_delta`, `mrr_delta`
    /// or `ndcg_delta`.
    sort: Option<String>,
    /// `desc` (default) or `asc`.
    order: Option<String>,
}

fn default_limit() -> i64 {
    50
}

impl ListParams {
    pub fn filter(&self) -> Result<RunFilter, AppError> {
        // One status or several, comma-separated: runs in any of them.
        let status = self
            .status
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                Status::parse(s).ok_or_else(|| {
                    AppError::bad(
                        "status",
                        "must be queued, running, done, failed, cancelled or skipped (or several, comma-separated)",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bounds = [
            (RunMetric::Map, self.map_min, self.map_max),
            (RunMetric::Mrr, self.mrr_min, self.mrr_max),
            (RunMetric::Ndcg, self.ndcg_min, self.ndcg_max),
            (RunMetric::MapDelta, self.map_delta_min, self.map_delta_max),
            (RunMetric::MrrDelta, self.mrr_delta_min, self.mrr_delta_max),
            (
                RunMetric::NdcgDelta,
                self.ndcg_delta_min,
                self.ndcg_delta_max,
            ),
        ];
        let mut ranges = Vec::new();
        for (metric, min, max) in bounds {
            if [min, max].iter().flatten().any(|v| !v.is_finite()) {
                let field = format!("{}_min", metric.name());
                return Err(AppError::bad(&field, "bounds must be finite numbers"));
            }
            if min.is_some() || max.is_some() {
                ranges.push((metric, min, max));
            }
        }
        Ok(RunFilter {
            status,
            tags: self
                .tag
                .iter()
                .flat_map(|t| t.split(','))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
            teacher: self.teacher.clone(),
            student: self.student.clone(),
            dataset: self.dataset.clone(),
            experiment_id: self.experiment_id,
            ranges,
        })
    }

    pub fn order(&self) -> Result<(RunSort, bool), AppError> {
        let sort = match self.sort.as_deref() {
            None => RunSort::Created,
            Some(s) => RunSort::parse(s).ok_or_else(|| {
                AppError::bad(
                    "sort",
                    "must be created, name, status, map, mrr, ndcg, map_delta, mrr_delta or ndcg_delta",
                )
            })?,
        };
        let descending = match self.order.as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(_) => return Err(AppError::bad("order", "must be asc or desc")),
        };
        Ok((sort, descending))
    }
}

pub async fn runs_list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<Page<Run>>, AppError> {
    super::check_page(p.limit, p.offset)?;
    let (sort, descending) = p.order()?;
    let (items, total) = state
        .store
        .list_runs(&p.filter()?, sort, descending, p.limit, p.offset)
        .await?;
    Ok(Json(Page { items, total }))
}

pub async fn runs_create(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewRun>,
) -> Result<Json<Run>, AppError> {
    if let Err(errs) = new.config.validate() {
        let first = &errs[0];
        return Err(AppError::bad(&first.field, first.message.clone()));
    }
    if new.tags.iter().any(|t| t.trim().is_empty() || t.len() > 64) {
        return Err(AppError::bad("tags", "each tag must be 1 to 64 characters"));
    }
    if let Some(e) = new.experiment_id {
        if !state
            .store
            .list_experiments()
            .await?
            .iter()
            .any(|x| x.id == e)
        {
            return Err(AppError::bad(
                "experiment_id",
                format!("experiment {e} does not exist"),
            ));
        }
    }
    Ok(Json(state.store.create_run(&new).await?))
}

pub async fn runs_read(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Run>, AppError> {
    Ok(Json(state.store.get_run(id).await?))
}

pub async fn runs_delete(
    State(state): State<AppState>,
    axum::Extension(settings): axum::Extension<crate::Settings>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, AppError> {
    state.store.delete_run(id).await?;
    crate::shards::remove_run_shards(&settings.artifact_root, id).await;
    Ok(Json(serde_json::json!({ "deleted": id })))
}

pub async fn runs_cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Run>, AppError> {
    state.store.cancel_run(id).await?;
    Ok(Json(state.store.get_run(id).await?))
}

pub async fn stages_list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<Stage>>, AppError> {
    state.store.get_run(id).await?;
    Ok(Json(state.store.list_stages(id).await?))
}

pub async fn evals_list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<EvalResult>>, AppError> {
    state.store.get_run(id).await?;
    Ok(Json(state.store.list_evals(id).await?))
}

/// The before/after/teacher metric table with absolute and relative changes.
pub async fn metric_table(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<MetricRow>>, AppError> {
    state.store.get_run(id).await?;
    Ok(Json(state.store.metric_rows(id).await?))
}
