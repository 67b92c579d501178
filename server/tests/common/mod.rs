//! Test helpers: a store on each backend, and request helpers over `oneshot`.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use distillery_server::{app, app_with, AppState, AuthMode, Settings, Store};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The PostgreSQL server the tests use; CI provides it at this address with trust auth.
pub fn postgres_admin_url() -> String {
    std::env::var("DISTILLERY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, migrated in-memory SQLite store.
pub async fn sqlite_store() -> Store {
    Store::connect("sqlite::memory:")
        .await
        .expect("in-memory sqlite")
}

/// A fresh database on the real PostgreSQL, created for this test. Fails (never skips) when
/// PostgreSQL can't be reached.
pub async fn postgres_store() -> Store {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let admin = postgres_admin_url();
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is required for these tests and is not reachable at {admin}: {e}")
        });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("distillery_test_{}_{}", std::process::id(), nanos);
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Store::connect(&format!("{base}/{name}"))
        .await
        .expect("connect to the fresh test database")
}

/// Runs `check` once against SQLite and once against PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $check:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$check($crate::common::sqlite_store().await).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$check($crate::common::postgres_store().await).await;
            }
        }
    };
}

pub fn router(store: Store) -> Router {
    app(AppState { store }, None)
}

/// A router under `--auth team` with artifacts confined to `artifact_root`.
pub fn team_router(store: Store, artifact_root: &std::path::Path) -> Router {
    let settings = Settings {
        auth: AuthMode::Team,
        artifact_root: artifact_root.to_path_buf(),
    };
    app_with(AppState { store }, settings, None)
}

/// A valid run config for launches.
pub const VALID_CONFIG: &str = r#"{"teacher": "/m/qwen3", "student": "/m/bge",
    "train_data": "train.jsonl.gz", "test_data": "test.jsonl.gz"}"#;

/// Launches a run and returns its id.
pub async fn launch(r: &Router, name: &str) -> i64 {
    let body = serde_json::json!({
        "name": name,
        "config": serde_json::from_str::<Value>(VALID_CONFIG).unwrap(),
        "tags": ["t"],
    });
    let (status, run) = send(r, "POST", "/api/v1/runs", Some(&body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    run["id"].as_i64().unwrap()
}

/// Registers a runner and returns its id.
pub async fn register(r: &Router, name: &str) -> i64 {
    let body = format!(r#"{{"name": "{name}", "device": "cpu", "memory_bytes": 1024}}"#);
    let (status, runner) = send(r, "POST", "/api/v1/runners", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{runner}");
    runner["id"].as_i64().unwrap()
}

/// Claims a job for `runner` (Null when nothing is ready).
pub async fn claim(r: &Router, runner: i64, body: &str) -> Value {
    let (status, job) = send(
        r,
        "POST",
        &format!("/api/v1/runners/{runner}/claim"),
        Some(body),
    )
    .await;
    assert!(
        status == StatusCode::OK || status == StatusCode::NO_CONTENT,
        "{status} {job}"
    );
    job
}

/// Posts a report on a job with its lease and returns status and body.
pub async fn report(r: &Router, job: &Value, what: &str, mut body: Value) -> (StatusCode, Value) {
    body["lease"] = job["lease"].clone();
    let uri = format!("/api/v1/jobs/{}/{what}", job["id"]);
    send(r, "POST", &uri, Some(&body.to_string())).await
}

/// Sends a request and returns the status and the JSON body (Null when empty).
pub async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let (status, json, _) = send_with(router, method, uri, body, &[]).await;
    (status, json)
}

/// Like [`send`] with extra headers; also returns the response headers.
pub async fn send_with(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let resp_headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, json, resp_headers)
}

/// GETs a text body (CSV).
pub async fn get_text(router: &Router, uri: &str) -> (StatusCode, String) {
    let req = Request::get(uri).body(Body::empty()).unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}
