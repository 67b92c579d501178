//! The API suite, run against SQLite and the real PostgreSQL.

mod common;
mod suite;

use axum::http::StatusCode;
use common::{router, send};
use distillery_server::Store;
use serde_json::json;

use common::VALID_CONFIG;

async fn health_names_backend(store: Store) {
    let backend = store.backend().name();
    let r = router(store);
    let (status, body) = send(&r, "GET", "/api/v1/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], backend);
}
both_backends!(health, health_names_backend);

async fn launch_run_expands_into_stages(store: Store) {
    let r = router(store);
    let body = format!(r#"{{"name": "first", "config": {VALID_CONFIG}, "tags": ["demo"]}}"#);
    let (status, run) = send(&r, "POST", "/api/v1/runs", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "queued");
    assert_eq!(run["config"]["batch_size"], 16, "reference default applied");
    let id = run["id"].as_i64().unwrap();

    let (status, stages) = send(&r, "GET", &format!("/api/v1/runs/{id}/stages"), None).await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = stages
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 9);
    assert_eq!(kinds[0], "score_train");
    assert_eq!(kinds[8], "compare");

    let (status, page) = send(&r, "GET", "/api/v1/runs?limit=10", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["tags"], json!(["demo"]));
}
both_backends!(launch, launch_run_expands_into_stages);

async fn bad_input_is_a_4xx_json_error(store: Store) {
    let r = router(store);
    let (status, body) = send(&r, "POST", "/api/v1/runs", Some("{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string());

    let bad = r#"{"config": {"teacher": "t", "student": "s", "train_data": "a", "test_data": "b", "lr": -1}}"#;
    let (status, body) = send(&r, "POST", "/api/v1/runs", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "lr");

    let (status, body) = send(&r, "GET", "/api/v1/runs/999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "run 999 not found");

    let (status, _) = send(&r, "GET", "/api/v1/runs/abc", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = send(&r, "GET", "/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());

    // Every rejection is a 4xx with a JSON {error} body.
    let big = format!(
        r#"{{"name": "{}"}}"#,
        "x".repeat(distillery_server::MAX_BODY_BYTES + 1)
    );
    let cases: Vec<(&str, &str, Option<&str>, StatusCode)> = vec![
        ("GET", "/api/v1/runs/abc", None, StatusCode::BAD_REQUEST),
        (
            "GET",
            "/api/v1/runs/99999999999999999999999",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/runs?limit=lots",
            None,
            StatusCode::BAD_REQUEST,
        ),
        ("GET", "/api/v1/runs?limit=0", None, StatusCode::BAD_REQUEST),
        (
            "GET",
            "/api/v1/runs?status=sleeping",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/runs/1/series",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/runs",
            Some(r#"{"nmae": "typo"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/api/v1/runs",
            Some(r#"{"config": {"learning_rate": 1}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/api/v1/runs",
            Some(r#"{"name": "#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/runs",
            Some(&big),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "PUT",
            "/api/v1/runs",
            Some("{}"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "POST",
            "/api/v1/runners/12345/claim",
            Some("{}"),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/api/v1/jobs/12345/progress",
            Some(r#"{"lease": "x", "progress": 0.5}"#),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/api/v1/experiments",
            Some(r#"{"name": " "}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "DELETE",
            "/api/v1/experiments/77",
            None,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, uri, body, want) in cases {
        let (status, json) = send(&r, method, uri, body).await;
        assert_eq!(status, want, "{method} {uri}: {json}");
        assert!(
            json["error"].is_string(),
            "{method} {uri}: not a JSON error: {json}"
        );
    }
    let runner = common::register(&r, "gpu0").await;
    let (status, json) = send(
        &r,
        "POST",
        &format!("/api/v1/runners/{runner}/claim"),
        Some(r#"{"lease_ms": -5}"#),
    )
    .await;
    assert_eq!(
        (status, json["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("lease_ms"))
    );
}
both_backends!(bad_input, bad_input_is_a_4xx_json_error);

async fn experiments_group_runs(store: Store) {
    let r = router(store);
    let (status, exp) = send(
        &r,
        "POST",
        "/api/v1/experiments",
        Some(r#"{"name": "bge on so"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{exp}");
    let id = exp["id"].as_i64().unwrap();
    let (_, read) = send(&r, "GET", &format!("/api/v1/experiments/{id}"), None).await;
    assert_eq!(read, exp);
    let body = format!(r#"{{"experiment_id": {id}, "config": {VALID_CONFIG}}}"#);
    let (status, run) = send(&r, "POST", "/api/v1/runs", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    common::launch(&r, "outside").await;
    let (_, page) = send(&r, "GET", &format!("/api/v1/runs?experiment_id={id}"), None).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], run["id"]);
    let body = format!(r#"{{"experiment_id": 999, "config": {VALID_CONFIG}}}"#);
    let (status, err) = send(&r, "POST", "/api/v1/runs", Some(&body)).await;
    assert_eq!(
        (status, err["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("experiment_id"))
    );
    let (status, _) = send(&r, "DELETE", &format!("/api/v1/experiments/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, kept) = send(&r, "GET", &format!("/api/v1/runs/{}", run["id"]), None).await;
    assert_eq!(
        kept["experiment_id"],
        json!(null),
        "runs outlive their experiment"
    );
}
both_backends!(experiments, experiments_group_runs);
