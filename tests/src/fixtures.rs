//! Fixtures of the browser tests: seeded runs and a runner's results played through the queue.

use distillery_api::{
    ClaimRequest, CompleteJob, EvalResult, MetricBatch, MetricPoint, NewRun, QueryResult,
    RegisterRunner, RunConfig,
};
use distillery_server::Store;

/// An in-memory store with two queued runs, "baseline" (lr 2e-5) and "higher-lr" (5e-5).
pub async fn seeded_store() -> Store {
    let store = Store::connect("sqlite::memory:").await.expect("sqlite");
    for (name, lr) in [("baseline", 2e-5), ("higher-lr", 5e-5)] {
        let config = RunConfig {
            teacher: "/models/qwen3-reranker-8b".into(),
            student: "/models/bge-reranker-v2-m3".into(),
            train_data: "train.jsonl.gz".into(),
            test_data: "test.jsonl.gz".into(),
            lr,
            ..RunConfig::default()
        };
        store
            .create_run(&NewRun {
                experiment_id: None,
                name: name.into(),
                config,
                tags: vec!["e2e".into()],
            })
            .await
            .expect("seed run");
    }
    store
}

pub fn eval(label: &str, base: f64) -> EvalResult {
    EvalResult {
        label: label.into(),
        at_k: 10,
        map: base,
        mrr: base + 0.05,
        ndcg: base + 0.02,
        n_queries: 3,
        n_pairs: 30,
        ci: serde_json::json!({"map": [base - 0.01, base + 0.01]}),
    }
}

pub fn query(label: &str, id: &str, ndcg: f64) -> QueryResult {
    QueryResult {
        label: label.into(),
        query_id: id.into(),
        query: format!("what is {id}?"),
        ap: ndcg,
        rr: ndcg,
        ndcg,
    }
}

/// Plays a runner through the in-process queue: claims run 1's first job, reports loss, lr and
/// grad-norm curves, and completes it with before/after/teacher evaluations.
pub async fn seed_results(store: &Store) {
    let runner = store
        .register_runner(&RegisterRunner {
            name: "gpu-0".into(),
            device: "cuda:0 H100".into(),
            memory_bytes: 80 << 30,
            catalog: Default::default(),
        })
        .await
        .expect("register");
    let job = store
        .claim(
            runner.id,
            &ClaimRequest {
                lease_ms: None,
                kinds: vec![],
            },
        )
        .await
        .expect("claim")
        .expect("a ready job");
    assert_eq!(job.run_id, 1);
    let mut points = Vec::new();
    for step in 1..=200i64 {
        let s = step as f64;
        points.push(MetricPoint {
            name: "loss".into(),
            step,
            value: 2.0 / s.sqrt() + 0.1 * (s * 0.7).sin().abs(),
            time_ms: None,
        });
        points.push(MetricPoint {
            name: "lr".into(),
            step,
            value: 2e-5 * (1.0 - s / 200.0),
            time_ms: None,
        });
        points.push(MetricPoint {
            name: "grad_norm".into(),
            step,
            value: 1.0 + (s * 0.3).cos(),
            time_ms: None,
        });
    }
    store
        .report_metrics(
            job.id,
            &MetricBatch {
                lease: job.lease.clone(),
                points,
            },
        )
        .await
        .expect("metrics");
    let queries = vec![
        query("student_before", "q1", 0.5),
        query("student_after", "q1", 0.9),
        query("student_before", "q2", 0.8),
        query("student_after", "q2", 0.6),
    ];
    let d: distillery_api::QueryDetail = serde_json::from_value(serde_json::json!({
        "query_id": "q1", "query": "what is q1?", "n_positive": 1, "n_negative": 1,
        "before": {"ap": 0.5, "rr": 0.5, "ndcg": 0.5}, "after": {"ap": 0.9, "rr": 0.9, "ndcg": 0.9},
        "teacher": {"ap": 1.0, "rr": 1.0, "ndcg": 1.0},
        "passages": [
            {"text": "q1 answer passage", "relevant": true, "teacher": 4.0, "before": 0.1, "after": 2.0, "rank_before": 2, "rank_after": 1},
            {"text": "noise passage", "relevant": false, "teacher": -3.0, "before": 0.5, "after": -1.0, "rank_before": 1, "rank_after": 2}
        ],
        "top_before": [1, 0], "top_after": [0, 1]}))
    .expect("detail json");
    store
        .report_query_details(
            job.id,
            &distillery_api::QueryDetailBatch {
                lease: job.lease.clone(),
                queries: vec![d],
            },
        )
        .await
        .expect("details");
    store
        .complete_job(
            job.id,
            &CompleteJob {
                lease: job.lease,
                skipped: false,
                message: None,
                evals: vec![
                    eval("student_before", 0.40),
                    eval("student_after", 0.47),
                    eval("teacher", 0.55),
                ],
                queries,
                manifest: serde_json::json!({"candle": "0.11.1"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                stats: None,
            },
        )
        .await
        .expect("complete");
}
