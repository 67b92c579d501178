//! The job queue: atomic claims, dependencies, leases, idempotent metrics, cancel and fail.

use std::collections::HashSet;

use axum::http::StatusCode;
use distillery_server::Store;
use serde_json::{json, Value};

use crate::both_backends;
use crate::common::{claim, launch, register, report, router, send};

async fn sixteen_claimers_never_share_a_job(store: Store) {
    let r = router(store);
    for i in 0..6 {
        launch(&r, &format!("run-{i}")).await;
    }
    let mut tasks = Vec::new();
    for i in 0..16 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let runner = register(&r, &format!("runner-{i}")).await;
            let mut got = Vec::new();
            loop {
                let job = claim(&r, runner, "{}").await;
                if job.is_null() {
                    return got;
                }
                got.push(job["id"].as_i64().unwrap());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a job was claimed twice: {all:?}");
    // Each run has three stages without dependencies: score_train, score_test, eval_before.
    assert_eq!(all.len(), 18);
}
both_backends!(concurrent_claims, sixteen_claimers_never_share_a_job);

async fn stages_wait_for_their_dependencies(store: Store) {
    let r = router(store);
    let run = launch(&r, "pipeline").await;
    let runner = register(&r, "gpu0").await;
    let mut done: Vec<String> = Vec::new();
    loop {
        let job = claim(&r, runner, "{}").await;
        if job.is_null() {
            break;
        }
        let kind = job["kind"].as_str().unwrap().to_string();
        let deps: &[&str] = match kind.as_str() {
            "triplets_train" => &["score_train"],
            "triplets_test" | "eval_teacher" => &["score_test"],
            "train" => &["triplets_train", "triplets_test"],
            "eval_after" => &["train"],
            "compare" => &["eval_before", "eval_after", "eval_teacher"],
            _ => &[],
        };
        for d in deps {
            assert!(done.iter().any(|x| x == d), "{kind} claimed before {d}");
        }
        assert_eq!(job["config"]["batch_size"], 16);
        let skipped = kind == "score_test";
        let (status, state) = report(&r, &job, "complete", json!({ "skipped": skipped })).await;
        assert_eq!(status, StatusCode::OK, "{state}");
        done.push(kind);
    }
    assert_eq!(done.len(), 9);
    let (_, run_json) = send(&r, "GET", &format!("/api/v1/runs/{run}"), None).await;
    assert_eq!(run_json["status"], "done");
    let (_, stages) = send(&r, "GET", &format!("/api/v1/runs/{run}/stages"), None).await;
    for s in stages.as_array().unwrap() {
        let want = if s["kind"] == "score_test" {
            "skipped"
        } else {
            "done"
        };
        assert_eq!(s["status"], want, "{s}");
        assert_eq!(s["progress"], 1.0);
        assert_eq!(s["runner"], "gpu0");
    }
}
both_backends!(dependencies, stages_wait_for_their_dependencies);

/// The stages that read the trained student go to the runner that trained it while it is
/// alive: another runner would have to train it again for want of the model files.
async fn stages_after_training_wait_for_the_trainer(store: Store) {
    let r = router(store);
    launch(&r, "affinity").await;
    let (trainer, other) = (register(&r, "gpu0").await, register(&r, "gpu1").await);
    loop {
        let job = claim(&r, trainer, "{}").await;
        assert!(
            !job.is_null(),
            "the trainer ran out of jobs before training"
        );
        let (status, body) = report(&r, &job, "complete", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if job["kind"] == "train" {
            break;
        }
    }
    // eval_after is ready, but not for the other runner; anything else still is.
    let kinds = json!({"kinds": ["eval_after", "compare"]}).to_string();
    assert!(claim(&r, other, &kinds).await.is_null());
    let job = claim(&r, trainer, &kinds).await;
    assert_eq!(job["kind"], "eval_after");
}
both_backends!(affinity, stages_after_training_wait_for_the_trainer);

async fn an_expired_lease_requeues_with_its_checkpoint(store: Store) {
    let r = router(store.clone());
    launch(&r, "flaky").await;
    let runner = register(&r, "gpu0").await;
    let first = claim(&r, runner, r#"{"lease_ms": 1, "kinds": ["score_train"]}"#).await;
    assert_eq!(first["attempt"], 1);
    let body = json!({"progress": 0.5, "checkpoint": "ckpt/step-100"});
    let (status, _) = report(&r, &first, "progress", body).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // The background reaper requeues it; so does the next claim.
    assert_eq!(store.reap_expired().await.unwrap(), 1);
    let (_, state) = send(&r, "GET", &format!("/api/v1/jobs/{}", first["id"]), None).await;
    assert_eq!(state["status"], "queued");
    let second = claim(&r, runner, r#"{"kinds": ["score_train"]}"#).await;
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["attempt"], 2);
    assert_eq!(second["checkpoint"], "ckpt/step-100");
    // The old lease is dead.
    let (status, body) = report(&r, &first, "progress", json!({"progress": 0.9})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = report(&r, &second, "progress", json!({"progress": 0.9})).await;
    assert_eq!(status, StatusCode::OK);
}
both_backends!(expired_lease, an_expired_lease_requeues_with_its_checkpoint);

async fn claim_checks_expired_leases_itself(store: Store) {
    let r = router(store);
    launch(&r, "flaky").await;
    let runner = register(&r, "gpu0").await;
    let mut last = Value::Null;
    for attempt in 1..=3 {
        let job = claim(&r, runner, r#"{"lease_ms": 1, "kinds": ["eval_before"]}"#).await;
        assert_eq!(job["attempt"], attempt, "{job}");
        last = job;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // After three expired leases the stage and its run fail.
    let job = claim(&r, runner, r#"{"kinds": ["eval_before"]}"#).await;
    assert!(job.is_null(), "{job}");
    let (_, run) = send(&r, "GET", &format!("/api/v1/runs/{}", last["run_id"]), None).await;
    assert_eq!(run["status"], "failed");
}
both_backends!(lease_attempts, claim_checks_expired_leases_itself);

async fn a_metric_batch_sent_twice_stores_once(store: Store) {
    let r = router(store);
    let run = launch(&r, "metrics").await;
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, "{}").await;
    let batch = json!({"points": [
        {"name": "loss", "step": 1, "value": 2.5},
        {"name": "loss", "step": 2, "value": 2.25},
        {"name": "lr", "step": 1, "value": 1e-6, "time_ms": 5},
    ]});
    let (status, ack) = report(&r, &job, "metrics", batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack, json!({"received": 3, "inserted": 3}));
    let (_, ack) = report(&r, &job, "metrics", batch).await;
    assert_eq!(ack, json!({"received": 3, "inserted": 0}));
    let (status, series) = send(
        &r,
        "GET",
        &format!("/api/v1/runs/{run}/series?name=loss"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{series}");
    assert_eq!(series["total_points"], 2);
    assert_eq!(series["steps"], json!([1, 2]));
    assert_eq!(series["values"], json!([2.5, 2.25]));
    let (_, names) = send(&r, "GET", &format!("/api/v1/runs/{run}/series/names"), None).await;
    assert_eq!(names, json!(["loss", "lr"]));
    let bad = json!({"points": [{"name": "loss", "step": 3, "value": "x"}]});
    let (status, body) = report(&r, &job, "metrics", bad).await;
    assert!(status.is_client_error(), "{status} {body}");
}
both_backends!(metric_batches, a_metric_batch_sent_twice_stores_once);

async fn cancel_and_fail_stop_the_run(store: Store) {
    let r = router(store);
    let cancelled = launch(&r, "to cancel").await;
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, "{}").await;
    assert_eq!(job["run_id"], cancelled);
    let (status, run) = send(
        &r,
        "POST",
        &format!("/api/v1/runs/{cancelled}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "cancelled");
    let (status, _) = report(&r, &job, "progress", json!({"progress": 0.1})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = send(
        &r,
        "POST",
        &format!("/api/v1/runs/{cancelled}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        claim(&r, runner, "{}").await.is_null(),
        "a cancelled run's jobs are gone"
    );

    let failing = launch(&r, "to fail").await;
    let job = claim(&r, runner, "{}").await;
    let (status, _) = report(&r, &job, "fail", json!({"message": "CUDA out of memory"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, run) = send(&r, "GET", &format!("/api/v1/runs/{failing}"), None).await;
    assert_eq!(run["status"], "failed");
    let (_, stages) = send(&r, "GET", &format!("/api/v1/runs/{failing}/stages"), None).await;
    let failed: Vec<&Value> = stages
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["message"], "CUDA out of memory");
    let (status, _) = send(&r, "DELETE", &format!("/api/v1/runs/{failing}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&r, "GET", &format!("/api/v1/runs/{failing}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both_backends!(cancel_fail, cancel_and_fail_stop_the_run);

async fn run_list_filters_sorts_and_pages(store: Store) {
    let r = router(store);
    let runner = register(&r, "gpu0").await;
    for (i, student) in ["/m/a", "/m/b", "/m/a"].iter().enumerate() {
        let body = json!({"name": format!("r{i}"), "tags": [format!("tag{i}"), "all"],
            "config": {"teacher": "/m/t", "student": student, "train_data": "d.jsonl", "test_data": "t.jsonl"}});
        let (status, _) = send(&r, "POST", "/api/v1/runs", Some(&body.to_string())).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Give the first two runs a trained-student MAP by completing eval_before stages with evals.
    for (i, map) in [(0, 0.3), (1, 0.7)] {
        let job = claim(&r, runner, r#"{"kinds": ["eval_before"]}"#).await;
        assert_eq!(job["run_id"], i + 1);
        let eval = json!({"label": "student_after", "at_k": 10, "map": map, "mrr": map, "ndcg": map,
            "n_queries": 3, "n_pairs": 30});
        let (status, body) = report(
            &r,
            &job,
            "complete",
            json!({"evals": [eval], "manifest": {"device": "cpu"}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, page) = send(&r, "GET", "/api/v1/runs?sort=map", None).await;
    assert_eq!(
        names(&page),
        ["r1", "r0", "r2"],
        "descending, unevaluated last"
    );
    assert_eq!(page["items"][0]["metrics"]["map"], 0.7);
    assert_eq!(page["items"][0]["manifest"]["device"], "cpu");
    let (_, page) = send(&r, "GET", "/api/v1/runs?sort=map&order=asc", None).await;
    assert_eq!(names(&page), ["r0", "r1", "r2"]);
    let (_, page) = send(
        &r,
        "GET",
        "/api/v1/runs?student=/m/a&tag=all&sort=name&order=asc",
        None,
    )
    .await;
    assert_eq!(
        (names(&page), page["total"].clone()),
        (vec!["r0".to_string(), "r2".into()], json!(2))
    );
    let (_, page) = send(&r, "GET", "/api/v1/runs?tag=tag1", None).await;
    assert_eq!(names(&page), ["r1"]);
    let (_, page) = send(
        &r,
        "GET",
        "/api/v1/runs?status=queued&dataset=d.jsonl&teacher=/m/t",
        None,
    )
    .await;
    assert_eq!(names(&page), ["r2"]);
    let (_, page) = send(
        &r,
        "GET",
        "/api/v1/runs?limit=1&offset=1&sort=created&order=asc",
        None,
    )
    .await;
    assert_eq!(
        (names(&page), page["total"].clone()),
        (vec!["r1".to_string()], json!(3))
    );
    let (status, body) = send(&r, "GET", "/api/v1/runs?sort=speed", None).await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("sort"))
    );
}
both_backends!(run_list, run_list_filters_sorts_and_pages);

async fn small_artifacts_are_stored_and_checked(store: Store) {
    let r = router(store);
    let run = launch(&r, "blobs").await;
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, "{}").await;
    let content = b"teacher scores\n";
    // sha256 of the content, computed independently of the server.
    let sha = "a4e0b3f0fd6fe8b2d5c3c0ff4c6a87e8cf7e1d6e4cb02ad3b3d18d7c8f1a4e2b";
    let hex: String = content.iter().map(|b| format!("{b:02x}")).collect();
    let bad =
        json!({"kind": "report", "blob_hex": hex, "size_bytes": content.len(), "sha256": sha});
    let (status, body) = report(&r, &job, "artifacts", bad).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sha256")),
        "{body}"
    );
    let real = <sha2::Sha256 as sha2::Digest>::digest(content);
    let real: String = real.iter().map(|b| format!("{b:02x}")).collect();
    let good =
        json!({"kind": "report", "blob_hex": hex, "size_bytes": content.len(), "sha256": real});
    let (status, body) = report(&r, &job, "artifacts", good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = send(&r, "GET", &format!("/api/v1/runs/{run}/artifacts"), None).await;
    assert_eq!(list[0]["stored"], true);
    assert_eq!(list[0]["sha256"], real.as_str());
    let uri = format!("/api/v1/runs/{run}/artifacts/{}", body["id"]);
    let (status, text) = crate::common::get_text(&r, &uri).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, "teacher scores\n")
    );
    let both =
        json!({"kind": "report", "path": "a", "blob_hex": hex, "size_bytes": 1, "sha256": real});
    let (status, _) = report(&r, &job, "artifacts", both).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
both_backends!(stored_artifacts, small_artifacts_are_stored_and_checked);

async fn heartbeats_extend_leases(store: Store) {
    let r = router(store);
    launch(&r, "long stage").await;
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, r#"{"lease_ms": 600000}"#).await;
    let before = job["lease_until_ms"].as_i64().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, _) = send(
        &r,
        "POST",
        &format!("/api/v1/runners/{runner}/heartbeat"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, state) = send(&r, "GET", &format!("/api/v1/jobs/{}", job["id"]), None).await;
    assert_eq!(state["status"], "running");
    assert!(
        state["lease_until_ms"].as_i64().unwrap() > before,
        "{state}"
    );
    let (_, runners) = send(&r, "GET", "/api/v1/runners", None).await;
    assert_eq!(runners[0]["name"], "gpu0");
    assert_eq!(runners[0]["memory_bytes"], 1024);
    let (status, _) = send(&r, "POST", "/api/v1/runners/999/heartbeat", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both_backends!(heartbeat, heartbeats_extend_leases);
