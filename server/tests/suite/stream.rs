//! What runners stream besides the job reports: stage log lines and their tail, and the
//! release of a job (requeued without counting the attempt).

use axum::http::StatusCode;
use distillery_server::Store;
use serde_json::json;

use crate::both_backends;
use crate::common::{claim, launch, register, report, router, send};

fn lines(from: i64, to: i64) -> serde_json::Value {
    let lines: Vec<_> = (from..to)
        .map(|seq| json!({"seq": seq, "time_ms": 1000 + seq, "level": "INFO", "message": format!("line {seq}")}))
        .collect();
    json!({ "lines": lines })
}

async fn log_lines_are_idempotent_and_tailed_per_stage(store: Store) {
    let r = router(store);
    let run = launch(&r, "logs").await;
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, r#"{"kinds": ["score_train"]}"#).await;
    let (status, ack) = report(&r, &job, "logs", lines(0, 5)).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack, json!({"received": 5, "inserted": 5}));
    // A replay (e.g. from the runner's outbox) stores nothing twice.
    let (_, ack) = report(&r, &job, "logs", lines(3, 8)).await;
    assert_eq!(ack, json!({"received": 5, "inserted": 3}));
    let other = claim(&r, runner, r#"{"kinds": ["score_test"]}"#).await;
    report(&r, &other, "logs", lines(0, 2)).await;

    let uri = format!("/api/v1/runs/{run}/logs?stage=score_train&tail=3");
    let (status, tail) = send(&r, "GET", &uri, None).await;
    assert_eq!(status, StatusCode::OK, "{tail}");
    let seqs: Vec<i64> = tail
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [5, 6, 7]);
    assert_eq!(tail[0]["kind"], "score_train");
    assert_eq!(tail[0]["attempt"], 1);
    assert_eq!(tail[0]["message"], "line 5");
    let (_, all) = send(&r, "GET", &format!("/api/v1/runs/{run}/logs"), None).await;
    assert_eq!(all.as_array().unwrap().len(), 10);

    let bad = json!({"lines": [{"seq": 9, "time_ms": 1, "level": "LOUD", "message": "x"}]});
    let (status, body) = report(&r, &job, "logs", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "lines[0].level");
    let uri = format!("/api/v1/runs/{run}/logs?stage=nonsense");
    let (status, body) = send(&r, "GET", &uri, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "stage");
    let (status, _) = send(&r, "GET", "/api/v1/runs/999/logs", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both_backends!(stage_logs, log_lines_are_idempotent_and_tailed_per_stage);

async fn a_released_job_is_requeued_at_once_with_its_checkpoint(store: Store) {
    let r = router(store);
    let run = launch(&r, "release").await;
    let runner = register(&r, "gpu0").await;
    let kinds = r#"{"lease_ms": 1, "kinds": ["score_train"]}"#;
    let first = claim(&r, runner, kinds).await;
    let body = json!({"progress": 0.5, "checkpoint": "run-1/ckpt/checkpoint-10"});
    report(&r, &first, "progress", body).await;
    let (status, state) = report(&r, &first, "release", json!({"message": "SIGTERM"})).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["status"], "queued");
    let (status, _) = report(&r, &first, "progress", json!({"progress": 0.6})).await;
    assert_eq!(status, StatusCode::CONFLICT, "the released lease is dead");
    let (_, stages) = send(&r, "GET", &format!("/api/v1/runs/{run}/stages"), None).await;
    assert_eq!(stages[0]["status"], "queued");
    assert_eq!(stages[0]["message"], "SIGTERM");

    // Releases never use up the attempts that expired leases have: after four releases,
    // three expired leases still fail the run only then.
    let mut job = claim(&r, runner, kinds).await;
    assert_eq!(job["attempt"], 2);
    assert_eq!(job["checkpoint"], "run-1/ckpt/checkpoint-10");
    for _ in 0..3 {
        report(&r, &job, "release", json!({})).await;
        job = claim(&r, runner, kinds).await;
    }
    assert_eq!(job["attempt"], 5);
    for expired in 1..=3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let next = claim(&r, runner, kinds).await;
        if expired < 3 {
            assert_eq!(next["attempt"], 5 + expired, "{next}");
        } else {
            assert!(next.is_null(), "{next}");
        }
    }
    let (_, run_json) = send(&r, "GET", &format!("/api/v1/runs/{run}"), None).await;
    assert_eq!(run_json["status"], "failed");
}
both_backends!(
    release,
    a_released_job_is_requeued_at_once_with_its_checkpoint
);
