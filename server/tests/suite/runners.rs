//! The runners page: each runner with the stage it is working on.

use axum::http::StatusCode;
use distillery_server::Store;
use serde_json::{json, Value};

use crate::both_backends;
use crate::common::{claim, launch, register, report, router, send};

async fn runners_show_their_current_job(store: Store) {
    let r = router(store);
    let run = launch(&r, "watched").await;
    let busy = register(&r, "gpu-busy").await;
    let idle = register(&r, "gpu-idle").await;
    let job = claim(&r, busy, r#"{"kinds": ["score_test"]}"#).await;
    let (status, body) = report(
        &r,
        &job,
        "progress",
        json!({"progress": 0.4, "message": "batch 4/10"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, list) = send(&r, "GET", "/api/v1/runners", None).await;
    assert_eq!(status, StatusCode::OK);
    let find = |list: &Value, id: i64| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .cloned()
            .unwrap()
    };
    let b = find(&list, busy);
    assert_eq!(
        (b["name"].as_str(), b["device"].as_str()),
        (Some("gpu-busy"), Some("cpu"))
    );
    let current = &b["current_job"];
    assert_eq!(current["job_id"], job["id"]);
    assert_eq!(current["run_id"], run);
    assert_eq!(current["run_name"], "watched");
    assert_eq!(current["stage"], "score_test");
    assert_eq!(current["progress"], 0.4);
    assert_eq!(current["message"], "batch 4/10");
    assert_eq!(current["attempt"], 1);
    assert_eq!(find(&list, idle)["current_job"], Value::Null);

    let (status, _) = report(&r, &job, "complete", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = send(&r, "GET", "/api/v1/runners", None).await;
    assert_eq!(
        find(&list, busy)["current_job"],
        Value::Null,
        "done: idle again"
    );
}
both_backends!(runner_current_job, runners_show_their_current_job);

/// What a runner reports under `--catalog` comes back on the runner list for the launch form,
/// and re-registering replaces it; a runner that reports none lists an empty catalog.
async fn runners_report_their_catalog(store: Store) {
    let r = router(store);
    let body = json!({
        "name": "gpu-models", "device": "cuda:0",
        "catalog": {"models": ["/models/bge-reranker-v2-m3"], "datasets": ["/data/train.jsonl.gz"]}
    })
    .to_string();
    let (status, runner) = send(&r, "POST", "/api/v1/runners", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{runner}");
    assert_eq!(runner["catalog"]["models"][0], "/models/bge-reranker-v2-m3");
    let plain = register(&r, "plain").await;

    let (_, list) = send(&r, "GET", "/api/v1/runners", None).await;
    let by_name = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_name("gpu-models")["catalog"],
        json!({"models": ["/models/bge-reranker-v2-m3"], "datasets": ["/data/train.jsonl.gz"]})
    );
    assert_eq!(
        by_name("plain")["catalog"],
        json!({"models": [], "datasets": []})
    );
    assert_eq!(by_name("plain")["id"], plain);

    let body = json!({"name": "gpu-models", "catalog": {"models": ["/models/other"]}}).to_string();
    let (status, _) = send(&r, "POST", "/api/v1/runners", Some(&body)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = send(&r, "GET", "/api/v1/runners", None).await;
    let again = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "gpu-models")
        .cloned()
        .unwrap();
    assert_eq!(
        again["catalog"],
        json!({"models": ["/models/other"], "datasets": []})
    );
}
both_backends!(runner_catalog, runners_report_their_catalog);
