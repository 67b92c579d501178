//! Test helpers: a store on each backend, and request helpers over `oneshot`.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use distillery_server::{app, AppState, Store};
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
                super::$check(super::common::sqlite_store().await).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$check(super::common::postgres_store().await).await;
            }
        }
    };
}

pub fn router(store: Store) -> Router {
    app(AppState { store }, None)
}

/// Sends a request and returns the status and the JSON body (Null when empty).
pub async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, json)
}
