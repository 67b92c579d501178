//! The run list: substring and tag filters, key-metric and change ranges, sort by change, and
//! the CSV of what is filtered.

use axum::http::StatusCode;
use distillery_server::Store;
use serde_json::{json, Value};

use crate::both_backends;
use crate::common::{claim, get_text, register, report, router, send};

/// Launches a run and, unless `scores` is None, evaluates it: MAP `before` → `after`.
async fn evaluated_run(
    r: &axum::Router,
    runner: i64,
    name: &str,
    teacher: &str,
    tags: &[&str],
    scores: Option<(f64, f64)>,
) -> i64 {
    let body = json!({"name": name, "tags": tags, "config": {
        "teacher": teacher, "student": "/m/bge", "train_data": format!("{name}.jsonl"),
        "test_data": "test.jsonl"}});
    let (status, run) = send(r, "POST", "/api/v1/runs", Some(&body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let id = run["id"].as_i64().unwrap();
    if let Some((before, after)) = scores {
        let job = claim(r, runner, r#"{"kinds": ["eval_before"]}"#).await;
        assert_eq!(job["run_id"], id);
        let eval = |label: &str, v: f64| {
            json!({"label": label, "at_k": 10, "map": v, "mrr": v + 0.1, "ndcg": v + 0.2,
                   "n_queries": 1, "n_pairs": 2})
        };
        let done = json!({"evals": [eval("student_before", before), eval("student_after", after)]});
        let (status, body) = report(r, &job, "complete", done).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    id
}

async fn names(r: &axum::Router, query: &str) -> (Vec<String>, Value) {
    let (status, page) = send(r, "GET", &format!("/api/v1/runs?{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    let names = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["name"].as_str().unwrap().to_string())
        .collect();
    (names, page["total"].clone())
}

async fn run_list_filters_and_sorts(store: Store) {
    let r = router(store);
    let gpu = register(&r, "gpu0").await;
    evaluated_run(
        &r,
        gpu,
        "big-gain",
        "/m/Qwen3-8B",
        &["a", "b"],
        Some((0.3, 0.6)),
    )
    .await;
    evaluated_run(
        &r,
        gpu,
        "small-gain",
        "/m/qwen3-4b",
        &["a"],
        Some((0.5, 0.55)),
    )
    .await;
    evaluated_run(
        &r,
        gpu,
        "regressed",
        "/m/other_50%",
        &["b"],
        Some((0.7, 0.65)),
    )
    .await;
    evaluated_run(&r, gpu, "pending", "/m/qwen3-8b", &["a", "b"], None).await;

    let (got, total) = names(&r, "sort=map_delta").await;
    assert_eq!(
        got,
        ["big-gain", "small-gain", "regressed", "pending"],
        "unevaluated last"
    );
    assert_eq!(total, 4);
    let (got, _) = names(&r, "sort=ndcg_delta&order=asc").await;
    assert_eq!(got, ["regressed", "small-gain", "big-gain", "pending"]);
    let (_, page) = send(&r, "GET", "/api/v1/runs?sort=map_delta&limit=1", None).await;
    let run = &page["items"][0];
    assert_eq!(
        (
            run["before"]["map"].as_f64(),
            run["metrics"]["map"].as_f64()
        ),
        (Some(0.3), Some(0.6))
    );

    // Teacher, student and dataset match case-insensitive substrings; % is literal.
    let (got, _) = names(&r, "teacher=QWEN3&sort=name&order=asc").await;
    assert_eq!(got, ["big-gain", "pending", "small-gain"]);
    let (got, _) = names(&r, "teacher=50%25").await;
    assert_eq!(got, ["regressed"]);
    let (got, _) = names(&r, "teacher=n3_").await;
    assert!(got.is_empty(), "_ is not a wildcard: {got:?}");
    let (got, _) = names(&r, "dataset=gain&sort=name&order=asc").await;
    assert_eq!(got, ["big-gain", "small-gain"]);
    // Several tags: runs carrying all of them.
    let (got, _) = names(&r, "tag=a,b&sort=name&order=asc").await;
    assert_eq!(got, ["big-gain", "pending"]);
    // Metric and change ranges are inclusive and exclude unevaluated runs.
    let (got, total) = names(&r, "map_min=0.55&map_max=0.62&sort=name&order=asc").await;
    assert_eq!(
        (got.as_slice(), total),
        (&["big-gain".to_string(), "small-gain".into()][..], json!(2))
    );
    let (got, _) = names(&r, "map_delta_max=0").await;
    assert_eq!(got, ["regressed"]);
    let (got, _) = names(&r, "ndcg_delta_min=0.01&mrr_min=0.68").await;
    assert_eq!(got, ["big-gain"]);
    let (got, _) = names(&r, "status=running&tag=b&sort=map").await;
    assert_eq!(got, ["regressed", "big-gain"]);
    // Several statuses: runs in any of them.
    let (got, _) = names(&r, "status=queued,failed&sort=name&order=asc").await;
    assert_eq!(got, ["pending"]);
    let (all, total) = names(&r, "sort=name&order=asc").await;
    let (got, either) = names(&r, "status=running,queued&sort=name&order=asc").await;
    assert_eq!((got, either), (all, total));

    // The CSV exports what is filtered, in the list's order.
    let (status, text) = get_text(&r, "/api/v1/export/runs.csv?tag=a&sort=map_delta").await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(
        rows[0].contains(",map,mrr,ndcg,map_before,mrr_before,ndcg_before,"),
        "{}",
        rows[0]
    );
    assert!(rows[1].contains(",big-gain,"), "{}", rows[1]);
    assert!(rows[1].contains(",0.6,0.7,0.8,0.3,0.4,0.5,"), "{}", rows[1]);
    assert!(rows[3].contains(",pending,"), "{}", rows[3]);

    for bad in ["sort=gain", "map_min=abc", "status=late", "order=up"] {
        let (status, err) = send(&r, "GET", &format!("/api/v1/runs?{bad}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {err}");
        let (status, _) = get_text(&r, &format!("/api/v1/export/runs.csv?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "csv {bad}");
    }
}
both_backends!(run_list, run_list_filters_and_sorts);
