//! CSV exports round-trip through a CSV parser and never carry a live formula.

use axum::http::StatusCode;
use distillery_api::RunConfig;
use distillery_server::Store;
use serde_json::json;

use crate::both_backends;
use crate::common::{claim, get_text, register, report, router, send};

fn parse(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    reader
        .records()
        .map(|r| r.expect("valid CSV").iter().map(str::to_string).collect())
        .collect()
}

async fn csv_round_trips(store: Store) {
    let r = router(store);
    let nasty_name = "=HYPERLINK(\"http://x\"), \"quoted\"\nsecond line";
    let body = json!({
        "name": nasty_name,
        "tags": ["@home", "b,c"],
        "config": {"teacher": "/m/t", "student": "-s", "train_data": "a.jsonl", "test_data": "b.jsonl",
                   "instruction": "+1 say \"why\""},
    });
    let (status, run) = send(&r, "POST", "/api/v1/runs", Some(&body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let run = run["id"].as_i64().unwrap();

    let (status, text) = get_text(&r, "/api/v1/export/runs.csv").await;
    assert_eq!(status, StatusCode::OK);
    let rows = parse(&text);
    assert_eq!(rows.len(), 2);
    let header = &rows[0];
    for (field, _) in RunConfig::default().fields() {
        assert!(
            header.iter().any(|h| h == field),
            "missing config field {field}"
        );
    }
    for col in ["id", "name", "status", "created_ms", "updated_ms", "tags"] {
        assert!(header.iter().any(|h| h == col), "missing {col}");
    }
    let cell = |name: &str| {
        let i = header.iter().position(|h| h == name).unwrap();
        rows[1][i].clone()
    };
    assert_eq!(cell("id"), run.to_string());
    assert_eq!(
        cell("name"),
        format!("'{nasty_name}"),
        "formula neutralised, text intact"
    );
    assert_eq!(cell("tags"), "'@home;b,c");
    assert_eq!(cell("student"), "'-s");
    assert_eq!(cell("instruction"), "'+1 say \"why\"");
    assert_eq!(cell("lr"), "0.00002");
    assert_eq!(cell("batch_size"), "16");
    for row in &rows {
        for c in row {
            assert!(
                !c.starts_with(['=', '+', '@', '\t', '\r']),
                "unsafe cell {c:?}"
            );
        }
    }

    // Curves, the metric table and per-query results come from a runner's reports.
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, r#"{"kinds": ["eval_before"]}"#).await;
    let points: Vec<_> = (0..300)
        .flat_map(|s| {
            [
                json!({"name": "loss", "step": s, "value": 1.0 / (1.0 + s as f64)}),
                json!({"name": "lr", "step": s, "value": -1e-5 * s as f64}),
            ]
        })
        .collect();
    let (status, _) = report(&r, &job, "metrics", json!({"points": points})).await;
    assert_eq!(status, StatusCode::OK);
    let eval = |label: &str, map: f64| {
        json!({"label": label, "at_k": 10, "map": map, "mrr": map + 0.1,
        "ndcg": map + 0.05, "n_queries": 2, "n_pairs": 20, "ci": {"map": [map - 0.02, map + 0.02]}})
    };
    let queries = json!([
        {"label": "student_after", "query_id": "q1", "query": "=cmd|' /C calc'!A0", "ap": 0.5, "rr": 1.0, "ndcg": 0.6},
        {"label": "student_after", "query_id": "q2", "query": "what, \"is\" it", "ap": 0.25, "rr": 0.5, "ndcg": 0.3},
    ]);
    let done = json!({"evals": [eval("student_before", 0.4), eval("student_after", 0.5), eval("teacher", 0.6)],
        "queries": queries});
    let (status, body) = report(&r, &job, "complete", done).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, text) = get_text(&r, &format!("/api/v1/runs/{run}/export/curves.csv")).await;
    let rows = parse(&text);
    assert_eq!(rows[0], ["step", "loss", "lr"]);
    assert_eq!(rows.len(), 301, "full resolution");
    assert_eq!(rows[300][0], "299");
    assert_eq!(
        rows[300][2].parse::<f64>().unwrap(),
        -1e-5 * 299.0,
        "numbers are not prefixed"
    );

    let (_, text) = get_text(&r, &format!("/api/v1/runs/{run}/export/metrics.csv")).await;
    let rows = parse(&text);
    assert_eq!(
        rows[0],
        [
            "metric",
            "before",
            "after",
            "teacher",
            "abs_change",
            "rel_change",
            "ci_low",
            "ci_high",
            "delta_ci_low",
            "delta_ci_high",
            "p_value"
        ]
    );
    assert_eq!(rows[1][0], "map");
    assert_eq!(rows[2][0], "mrr@10");
    let f = |s: &str| s.parse::<f64>().unwrap();
    assert!((f(&rows[1][4]) - 0.1).abs() < 1e-9);
    assert!((f(&rows[1][5]) - 0.25).abs() < 1e-9);
    assert!((f(&rows[1][6]) - 0.48).abs() < 1e-9);

    let (_, text) = get_text(&r, &format!("/api/v1/runs/{run}/export/queries.csv")).await;
    let rows = parse(&text);
    assert_eq!(rows[0], ["query_id", "query", "label", "ap", "rr", "ndcg"]);
    assert_eq!(rows[1][1], "'=cmd|' /C calc'!A0");
    assert_eq!(rows[2][1], "what, \"is\" it");
    assert_eq!(rows[2][3], "0.25");
}
both_backends!(csv_export, csv_round_trips);
