//! Plain async fetchers over the server's REST API; DTOs come from `distillery-api`.

use distillery_api::{ApiError, Page, Run, Stage};
use gloo_net::http::Request;
use serde::de::DeserializeOwned;

/// A failed request, with the server's message when it sent one.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchError(pub String);

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FetchError {}

async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, FetchError> {
    let resp = Request::get(url)
        .send()
        .await
        .map_err(|e| FetchError(format!("network error: {e}")))?;
    if !resp.ok() {
        let msg = match resp.json::<ApiError>().await {
            Ok(e) => e.error,
            Err(_) => format!("HTTP {}", resp.status()),
        };
        return Err(FetchError(msg));
    }
    resp.json::<T>()
        .await
        .map_err(|e| FetchError(format!("bad response: {e}")))
}

pub async fn fetch_runs(limit: i64, offset: i64) -> Result<Page<Run>, FetchError> {
    get_json(&format!("/api/v1/runs?limit={limit}&offset={offset}")).await
}

pub async fn fetch_run(id: i64) -> Result<Run, FetchError> {
    get_json(&format!("/api/v1/runs/{id}")).await
}

pub async fn fetch_stages(id: i64) -> Result<Vec<Stage>, FetchError> {
    get_json(&format!("/api/v1/runs/{id}/stages")).await
}
