//! Plain async fetchers over the server's REST API; DTOs come from `distillery-api`.

use distillery_api::{
    ApiError, Artifact, MetricRow, Page, QueryDetail, QueryDiff, Run, RunnerStatus, Series, Stage,
};
use gloo_net::http::{Request, Response};
use serde::de::DeserializeOwned;

/// A failed request, with the server's message and the bad field when it sent one.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchError(pub String);

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FetchError {}

/// The body of a successful response; a failure becomes a [`FetchError`] with the server's
/// message, and a 401 also sends the user to the login page.
pub(crate) async fn read_json<T: DeserializeOwned>(resp: Response) -> Result<T, FetchError> {
    if resp.status() == 401 {
        crate::session::login_required();
    }
    if !resp.ok() {
        let msg = match resp.json::<ApiError>().await {
            Ok(e) => match e.field {
                Some(field) => format!("{field}: {}", e.error),
                None => e.error,
            },
            Err(_) => format!("HTTP {}", resp.status()),
        };
        return Err(FetchError(msg));
    }
    resp.json::<T>()
        .await
        .map_err(|e| FetchError(format!("bad response: {e}")))
}

async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, FetchError> {
    let resp = Request::get(url)
        .send()
        .await
        .map_err(|e| FetchError(format!("network error: {e}")))?;
    read_json(resp).await
}

async fn post_empty<T: DeserializeOwned>(url: &str) -> Result<T, FetchError> {
    let resp = Request::post(url)
        .send()
        .await
        .map_err(|e| FetchError(format!("network error: {e}")))?;
    read_json(resp).await
}

/// Filters, sort order and page of the run list, as the `/runs` query string takes them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunQuery {
    pub limit: i64,
    pub offset: i64,
    pub status: String,
    pub teacher: String,
    pub student: String,
    pub dataset: String,
    pub tag: String,
    /// Metric bounds by query key (`map_min`, `ndcg_delta_max`, …), as typed.
    pub bounds: std::collections::BTreeMap<String, String>,
    pub sort: String,
    pub ascending: bool,
}

impl RunQuery {
    /// The query string (without `?`), skipping empty filters.
    pub fn to_query(&self) -> String {
        format!(
            "limit={}&offset={}&{}",
            self.limit,
            self.offset,
            self.filter_query()
        )
    }

    /// The filters and order without the page: what the runs CSV export takes.
    pub fn filter_query(&self) -> String {
        let mut parts = Vec::new();
        let bounds = self.bounds.iter().map(|(k, v)| (k.as_str(), v));
        for (key, value) in [
            ("status", &self.status),
            ("teacher", &self.teacher),
            ("student", &self.student),
            ("dataset", &self.dataset),
            ("tag", &self.tag),
            ("sort", &self.sort),
        ]
        .into_iter()
        .chain(bounds)
        {
            if !value.trim().is_empty() {
                let enc: String = js_sys::encode_uri_component(value.trim()).into();
                parts.push(format!("{key}={enc}"));
            }
        }
        parts.push(format!(
            "order={}",
            if self.ascending { "asc" } else { "desc" }
        ));
        parts.join("&")
    }
}

pub async fn fetch_runs(query: RunQuery) -> Result<Page<Run>, FetchError> {
    get_json(&format!("/api/v1/runs?{}", query.to_query())).await
}

pub async fn fetch_run(id: i64) -> Result<Run, FetchError> {
    get_json(&format!("/api/v1/runs/{id}")).await
}

pub async fn fetch_stages(id: i64) -> Result<Vec<Stage>, FetchError> {
    get_json(&format!("/api/v1/runs/{id}/stages")).await
}

/// The run's jobs: one per stage, or one per shard of a sharded teacher-scoring stage.
pub async fn fetch_jobs(id: i64) -> Result<Vec<distillery_api::RunJob>, FetchError> {
    get_json(&format!("/api/v1/runs/{id}/jobs")).await
}

pub async fn fetch_metrics(id: i64) -> Result<Vec<MetricRow>, FetchError> {
    get_json(&format!("/api/v1/runs/{id}/metrics")).await
}

/// Order and page of a run's per-query list (`/runs/{id}/queries`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryOrder {
    /// Most regressed first instead of most improved.
    pub regressed_first: bool,
    /// `ndcg`, `ap` or `rr`.
    pub metric: String,
    pub limit: i64,
    pub offset: i64,
}

pub async fn fetch_query_diffs(id: i64, o: QueryOrder) -> Result<Page<QueryDiff>, FetchError> {
    let order = if o.regressed_first {
        "delta_asc"
    } else {
        "delta_desc"
    };
    get_json(&format!(
        "/api/v1/runs/{id}/queries?order={order}&metric={}&limit={}&offset={}",
        o.metric, o.limit, o.offset
    ))
    .await
}

pub async fn fetch_query_detail(id: i64, query_id: String) -> Result<QueryDetail, FetchError> {
    let enc: String = js_sys::encode_uri_component(&query_id).into();
    get_json(&format!("/api/v1/runs/{id}/queries/{enc}")).await
}

pub async fn fetch_artifacts(id: i64) -> Result<Vec<Artifact>, FetchError> {
    get_json(&format!("/api/v1/runs/{id}/artifacts")).await
}

pub async fn fetch_series_names(id: i64) -> Result<Vec<String>, FetchError> {
    get_json(&format!("/api/v1/runs/{id}/series/names")).await
}

pub async fn fetch_series(id: i64, name: &str) -> Result<Series, FetchError> {
    let enc: String = js_sys::encode_uri_component(name).into();
    get_json(&format!(
        "/api/v1/runs/{id}/series?name={enc}&max_points=2000"
    ))
    .await
}

pub async fn fetch_runners() -> Result<Vec<RunnerStatus>, FetchError> {
    get_json("/api/v1/runners").await
}

pub async fn cancel_run(id: i64) -> Result<Run, FetchError> {
    post_empty(&format!("/api/v1/runs/{id}/cancel")).await
}

/// A rejected submission: the server's message and the config field it names, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub error: String,
    pub field: Option<String>,
}

/// Queues a new run (`POST /runs`); a 400 comes back with the offending field.
pub async fn create_run(new: &distillery_api::NewRun) -> Result<Run, Rejection> {
    let network = |e: gloo_net::Error| Rejection {
        error: format!("network error: {e}"),
        field: None,
    };
    let resp = Request::post("/api/v1/runs")
        .json(new)
        .map_err(network)?
        .send()
        .await
        .map_err(network)?;
    if resp.ok() {
        return resp.json::<Run>().await.map_err(|e| Rejection {
            error: format!("bad response: {e}"),
            field: None,
        });
    }
    match resp.json::<ApiError>().await {
        Ok(e) => Err(Rejection {
            error: e.error,
            field: e.field,
        }),
        Err(_) => Err(Rejection {
            error: format!("HTTP {}", resp.status()),
            field: None,
        }),
    }
}
