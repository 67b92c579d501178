//! Sharded teacher scoring: one job per shard, the stage done only when every shard is,
//! expiry and failure per shard, and the shard files' upload and download.

use axum::http::StatusCode;
use axum::Router;
use distillery_server::{app_with, AppState, AuthMode, Settings, Store};
use serde_json::{json, Value};

use crate::both_backends;
use crate::common::{claim, register, report, router, send, send_with, VALID_CONFIG};

/// Launches a run whose teacher scoring is cut into `shards`; returns its id.
async fn launch_sharded(r: &Router, shards: u32) -> i64 {
    let mut config: Value = serde_json::from_str(VALID_CONFIG).unwrap();
    config["teacher_shards"] = json!(shards);
    let body = json!({"name": "sharded", "config": config, "tags": []});
    let (status, run) = send(r, "POST", "/api/v1/runs", Some(&body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    run["id"].as_i64().unwrap()
}

/// Claims one job of `kind` (Null when none is ready).
async fn claim_kind(r: &Router, runner: i64, kind: &str, lease_ms: i64) -> Value {
    let body = json!({"kinds": [kind], "lease_ms": lease_ms}).to_string();
    claim(r, runner, &body).await
}

async fn get(r: &Router, uri: &str) -> Value {
    let (status, body) = send(r, "GET", uri, None).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

async fn stage(r: &Router, run: i64, kind: &str) -> Value {
    let stages = get(r, &format!("/api/v1/runs/{run}/stages")).await;
    stages
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == kind)
        .cloned()
        .unwrap()
}

async fn job_status(r: &Router, job: &Value) -> Value {
    get(r, &format!("/api/v1/jobs/{}", job["id"])).await["status"].clone()
}

async fn shard_jobs_are_claimable_alone_and_gate_downstream(store: Store) {
    let r = router(store);
    let run = launch_sharded(&r, 3).await;
    let runners = [
        register(&r, "gpu0").await,
        register(&r, "gpu1").await,
        register(&r, "gpu2").await,
    ];
    // Three runners each take one shard of each scoring stage.
    let mut jobs: Vec<Value> = Vec::new();
    for kind in ["score_train", "score_test"] {
        for (i, runner) in runners.iter().enumerate() {
            let job = claim_kind(&r, *runner, kind, 60_000).await;
            assert_eq!(job["kind"], kind, "{job}");
            assert_eq!(job["shard"], json!({"index": i, "count": 3}), "{job}");
            jobs.push(job);
        }
        assert!(claim_kind(&r, runners[0], kind, 60_000).await.is_null());
    }
    let listed = get(&r, &format!("/api/v1/runs/{run}/jobs")).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 9 - 2 + 6, "one job per shard: {listed:?}");
    let train: Vec<(Value, Value)> = listed
        .iter()
        .filter(|j| j["kind"] == "score_train")
        .map(|j| (j["shard"]["index"].clone(), j["runner_id"].clone()))
        .collect();
    let expected: Vec<(Value, Value)> = runners
        .iter()
        .enumerate()
        .map(|(i, id)| (json!(i), json!(id)))
        .collect();
    assert_eq!(train, expected);
    assert_eq!(stage(&r, run, "score_train").await["status"], "running");

    // Progress of a sharded stage is the mean over its shards.
    let (status, _) = report(&r, &jobs[3], "progress", json!({"progress": 0.6})).await;
    assert_eq!(status, StatusCode::OK);
    let progress = stage(&r, run, "score_test").await["progress"]
        .as_f64()
        .unwrap();
    assert!((progress - 0.2).abs() < 1e-9, "{progress}");

    // Two of three shards done: the stage still runs and triplets wait. Each shard reports
    // what it measured; the stage's stats add them up.
    let measured = [
        json!({"seconds": 2.0, "items": 100, "unit": "pairs", "from_cache": 10, "setup_seconds": 1.0}),
        json!({"seconds": 4.0, "items": 300, "unit": "pairs", "peak_gib": 20.5}),
    ];
    for (job, stats) in jobs[..2].iter().zip(&measured) {
        let (status, body) = report(&r, job, "complete", json!({"stats": stats})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let stats = &stage(&r, run, "score_train").await["stats"];
    assert_eq!(
        (
            &stats["items"],
            &stats["seconds"],
            &stats["from_cache"],
            &stats["jobs"]
        ),
        (&json!(400), &json!(4.0), &json!(10), &json!(2)),
        "{stats}"
    );
    assert_eq!(stats["peak_gib"], 20.5);
    assert!(stage(&r, run, "score_test").await["stats"].is_null());
    let bad = json!({"stats": {"seconds": -1.0, "items": 1, "unit": "pairs"}});
    let (status, body) = report(&r, &jobs[3], "complete", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("stats"), "{body}");
    let train = stage(&r, run, "score_train").await;
    assert_eq!(train["status"], "running", "{train}");
    assert!(claim_kind(&r, runners[0], "triplets_train", 60_000)
        .await
        .is_null());
    let (status, _) = report(&r, &jobs[2], "complete", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let train = stage(&r, run, "score_train").await;
    assert_eq!(
        (&train["status"], &train["progress"]),
        (&json!("done"), &json!(1.0))
    );
    let triplets = claim_kind(&r, runners[0], "triplets_train", 60_000).await;
    assert_eq!(triplets["kind"], "triplets_train");
    assert!(triplets["shard"].is_null(), "{triplets}");
    // The test split's triplets and the teacher's evaluation still wait for its shards.
    assert!(claim_kind(&r, runners[0], "triplets_test", 60_000)
        .await
        .is_null());
}
both_backends!(
    shard_jobs,
    shard_jobs_are_claimable_alone_and_gate_downstream
);

async fn an_expired_shard_lease_requeues_that_shard_alone(store: Store) {
    let r = router(store.clone());
    let run = launch_sharded(&r, 3).await;
    let runner = register(&r, "gpu0").await;
    // Every claim reaps expired leases first, so the short lease is claimed last.
    let steady = claim_kind(&r, runner, "score_train", 60_000).await;
    let flaky = claim_kind(&r, runner, "score_train", 1).await;
    assert_eq!(steady["shard"]["index"], 0);
    assert_eq!(flaky["shard"]["index"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(store.reap_expired().await.unwrap(), 1);
    assert_eq!(job_status(&r, &flaky).await, "queued");
    assert_eq!(job_status(&r, &steady).await, "running");
    assert_eq!(stage(&r, run, "score_train").await["status"], "running");
    let (status, _) = report(&r, &steady, "progress", json!({"progress": 0.5})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = report(&r, &flaky, "progress", json!({"progress": 0.5})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let again = claim_kind(&r, runner, "score_train", 60_000).await;
    assert_eq!((&again["id"], &again["attempt"]), (&flaky["id"], &json!(2)));
    assert_eq!(again["shard"]["index"], 1);
    assert_eq!(steady["attempt"], 1);

    // A released shard is queued again alone; the stage is queued once no shard is leased.
    let (status, _) = report(&r, &again, "release", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(job_status(&r, &again).await, "queued");
    assert_eq!(stage(&r, run, "score_train").await["status"], "running");
    let (status, _) = report(&r, &steady, "release", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stage(&r, run, "score_train").await["status"], "queued");
}
both_backends!(
    shard_expiry,
    an_expired_shard_lease_requeues_that_shard_alone
);

async fn a_shard_failing_for_good_fails_the_stage_and_the_run(store: Store) {
    let r = router(store);
    // Failed by its runner: the sibling shards are cancelled and their leases refused.
    let run = launch_sharded(&r, 2).await;
    let runner = register(&r, "gpu0").await;
    let bad = claim_kind(&r, runner, "score_test", 60_000).await;
    let sibling = claim_kind(&r, runner, "score_test", 60_000).await;
    let (status, _) = report(&r, &bad, "fail", json!({"message": "teacher NaN"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get(&r, &format!("/api/v1/runs/{run}")).await["status"],
        "failed"
    );
    let failed = stage(&r, run, "score_test").await;
    assert_eq!(
        (&failed["status"], &failed["message"]),
        (&json!("failed"), &json!("teacher NaN"))
    );
    assert_eq!(job_status(&r, &sibling).await, "cancelled");
    let (status, _) = report(&r, &sibling, "complete", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Three expired leases of one shard fail the run too.
    let run = launch_sharded(&r, 2).await;
    for attempt in 1..=3 {
        let job = claim_kind(&r, runner, "score_train", 1).await;
        assert_eq!(
            (&job["run_id"], &job["attempt"]),
            (&json!(run), &json!(attempt)),
            "{job}"
        );
        assert_eq!(job["shard"]["index"], 0);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(claim_kind(&r, runner, "score_train", 1).await.is_null());
    assert_eq!(
        get(&r, &format!("/api/v1/runs/{run}")).await["status"],
        "failed"
    );
    assert_eq!(stage(&r, run, "score_train").await["status"], "failed");
}
both_backends!(
    shard_failure,
    a_shard_failing_for_good_fails_the_stage_and_the_run
);

async fn shard_files_upload_idempotently_and_download_once_done(store: Store) {
    let artifacts = tempfile::tempdir().unwrap();
    let settings = Settings {
        auth: AuthMode::None,
        artifact_root: artifacts.path().to_path_buf(),
    };
    let r = app_with(AppState { store }, settings, None);
    let run = launch_sharded(&r, 2).await;
    let runner = register(&r, "gpu0").await;
    let job = claim_kind(&r, runner, "score_train", 60_000).await;
    let uri = format!("/api/v1/jobs/{}/shard", job["id"]);
    let lease = job["lease"].as_str().unwrap();
    let text = "{\"query\": \"q\", \"passage\": \"p\", \"score\": 1.5}\n";

    let (status, body, _) = send_with(&r, "PUT", &uri, Some(text), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no lease: {body}");
    let wrong = [("x-distillery-lease", "not-the-lease")];
    let (status, _, _) = send_with(&r, "PUT", &uri, Some(text), &wrong).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let header = [("x-distillery-lease", lease)];
    for _ in 0..2 {
        let (status, stored, _) = send_with(&r, "PUT", &uri, Some(text), &header).await;
        assert_eq!(status, StatusCode::OK, "{stored}");
        assert_eq!(stored["size_bytes"], text.len());
        assert_eq!(stored["sha256"].as_str().unwrap().len(), 64);
    }
    let on_disk = artifacts
        .path()
        .join(format!("shards/run-{run}/score_train-0-of-2.jsonl"));
    assert_eq!(std::fs::read_to_string(&on_disk).unwrap(), text);
    let listed = get(&r, &format!("/api/v1/runs/{run}/artifacts")).await;
    let shards: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "teacher_scores_shard")
        .collect();
    assert_eq!(
        shards.len(),
        1,
        "a retried upload is recorded once: {listed}"
    );

    // Not downloadable before its job is done; then byte for byte.
    let download = format!("/api/v1/runs/{run}/shards/score_train/0");
    let (status, _) = send(&r, "GET", &download, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = report(&r, &job, "complete", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = crate::common::get_text(&r, &download).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, text));
    let (status, _) = send(
        &r,
        "GET",
        &format!("/api/v1/runs/{run}/shards/score_train/2"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        &r,
        "GET",
        &format!("/api/v1/runs/{run}/shards/train/0"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A shard completed as skipped (a retry that found its own earlier output and uploaded it
    // again) is downloadable too; an upload whose lease ran out leaves the stored file alone.
    let second = claim_kind(&r, runner, "score_train", 60_000).await;
    assert_eq!(second["shard"]["index"], 1);
    let uri = format!("/api/v1/jobs/{}/shard", second["id"]);
    let header = [("x-distillery-lease", second["lease"].as_str().unwrap())];
    let (status, _, _) = send_with(&r, "PUT", &uri, Some(text), &header).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = report(&r, &second, "complete", json!({"skipped": true})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        crate::common::get_text(&r, &format!("/api/v1/runs/{run}/shards/score_train/1")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, text));
    let stale = "{\"query\": \"q\", \"passage\": \"p\", \"score\": 9.0}\n";
    let (status, _, _) = send_with(&r, "PUT", &uri, Some(stale), &header).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let second_file = artifacts
        .path()
        .join(format!("shards/run-{run}/score_train-1-of-2.jsonl"));
    assert_eq!(std::fs::read_to_string(&second_file).unwrap(), text);

    // A job that is not a shard takes no upload.
    let eval = claim_kind(&r, runner, "eval_before", 60_000).await;
    let uri = format!("/api/v1/jobs/{}/shard", eval["id"]);
    let header = [("x-distillery-lease", eval["lease"].as_str().unwrap())];
    let (status, body, _) = send_with(&r, "PUT", &uri, Some(text), &header).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Deleting the run removes its shard files.
    let (status, _) = send(&r, "DELETE", &format!("/api/v1/runs/{run}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!on_disk.exists());
}
both_backends!(
    shard_files,
    shard_files_upload_idempotently_and_download_once_done
);

/// Two shards of one run expiring in the same reap: the first, out of attempts, fails the run
/// and cancels the second, which must stay cancelled (not be queued again, reviving the run).
async fn a_run_failed_by_an_expired_shard_stays_failed(store: Store) {
    let r = router(store.clone());
    let run = launch_sharded(&r, 2).await;
    let runner = register(&r, "gpu0").await;
    // Shard 0 twice with a lease that runs out at once (each claim reaps the last one).
    for attempt in 1..=2 {
        let job = claim_kind(&r, runner, "score_train", 1).await;
        assert_eq!(
            (&job["shard"]["index"], &job["attempt"]),
            (&json!(0), &json!(attempt))
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Its third attempt and shard 1's first, leased together, expire together.
    let last = claim_kind(&r, runner, "score_train", 200).await;
    let other = claim_kind(&r, runner, "score_train", 200).await;
    assert_eq!(
        (&last["shard"]["index"], &last["attempt"]),
        (&json!(0), &json!(3))
    );
    assert_eq!(other["shard"]["index"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    store.reap_expired().await.unwrap();
    assert_eq!(
        get(&r, &format!("/api/v1/runs/{run}")).await["status"],
        "failed"
    );
    assert_eq!(job_status(&r, &other).await, "cancelled");
    assert_eq!(stage(&r, run, "score_train").await["status"], "failed");
    assert!(claim_kind(&r, runner, "score_train", 60_000)
        .await
        .is_null());
    assert_eq!(
        get(&r, &format!("/api/v1/runs/{run}")).await["status"],
        "failed"
    );
}
both_backends!(
    shard_expiry_fails_for_good,
    a_run_failed_by_an_expired_shard_stays_failed
);
