//! The per-query diff explorer: a runner uploads query details, the run page lists the queries
//! sorted by a metric's change and reads one query's passages.

use axum::http::StatusCode;
use distillery_server::Store;
use serde_json::{json, Value};

use crate::both_backends;
use crate::common::{claim, get_text, launch, register, report, router, send};

/// A query detail with nDCG `before` → `after` and one positive in both top lists.
fn detail(id: &str, before: f64, after: f64) -> Value {
    let scores = |v: f64| json!({"ap": v / 2.0, "rr": v, "ndcg": v});
    json!({
        "query_id": id, "query": format!("what is {id}?"), "n_positive": 1, "n_negative": 1,
        "before": scores(before), "after": scores(after), "teacher": scores(1.0),
        "passages": [
            {"text": format!("{id} answer"), "relevant": true, "teacher": 4.0, "before": 0.1,
             "after": 2.0, "rank_before": 2, "rank_after": 1},
            {"text": "noise", "relevant": false, "teacher": -3.0, "before": 0.5,
             "after": -1.0, "rank_before": 1, "rank_after": 2}
        ],
        "top_before": [1, 0], "top_after": [0, 1]
    })
}

async fn query_details_round_trip(store: Store) {
    let r = router(store);
    let run = launch(&r, "explorer").await;
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, r#"{"kinds": ["eval_before"]}"#).await;
    let batch = json!({"queries": [
        detail("q1", 0.5, 0.9),
        detail("q2", 0.8, 0.3),
        detail("q3", 0.4, 0.4),
    ]});
    let (status, ack) = report(&r, &job, "queries", batch.clone()).await;
    assert_eq!(
        (status, ack["received"].as_i64()),
        (StatusCode::OK, Some(3)),
        "{ack}"
    );
    // Idempotent: the same batch again changes nothing.
    let (status, _) = report(&r, &job, "queries", batch).await;
    assert_eq!(status, StatusCode::OK);

    let list = |q: &str| {
        let r = r.clone();
        let uri = format!("/api/v1/runs/{run}/queries{q}");
        async move {
            let (status, page) = send(&r, "GET", &uri, None).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {page}");
            let ids: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["query_id"].as_str().unwrap().to_string())
                .collect();
            (page, ids)
        }
    };
    let (page, ids) = list("").await;
    assert_eq!(page["total"], 3);
    assert_eq!(ids, ["q1", "q3", "q2"], "most improved first by default");
    let first = &page["items"][0];
    assert!(
        (first["delta"].as_f64().unwrap() - 0.4).abs() < 1e-9,
        "{first}"
    );
    assert_eq!(first["query"], "what is q1?");
    assert_eq!(first["teacher"]["ndcg"], 1.0);
    assert_eq!(first["has_detail"], true);
    let (_, ids) = list("?order=delta_asc").await;
    assert_eq!(ids, ["q2", "q3", "q1"], "most regressed first");
    let (page, ids) = list("?order=delta_asc&metric=ap&limit=1&offset=1").await;
    assert_eq!(
        (ids.as_slice(), &page["total"]),
        (&["q3".to_string()][..], &json!(3))
    );
    assert!((page["items"][0]["delta"].as_f64().unwrap()).abs() < 1e-9);

    let (status, d) = send(&r, "GET", &format!("/api/v1/runs/{run}/queries/q2"), None).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d, detail("q2", 0.8, 0.3), "stored as sent");
    let (status, err) = send(&r, "GET", &format!("/api/v1/runs/{run}/queries/nope"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(err["error"].is_string());

    // The detail's scores are the run's per-query results too (CSV export).
    let (_, text) = get_text(&r, &format!("/api/v1/runs/{run}/export/queries.csv")).await;
    assert_eq!(text.lines().count(), 1 + 3 * 3, "{text}");
    assert!(text.contains("q2,what is q2?,teacher,0.5,1,1"), "{text}");

    // Per-query results reported without a detail are listed, without one.
    let scores = |label: &str, ndcg: f64| json!({"label": label, "query_id": "q4", "query": "bare", "ap": ndcg, "rr": ndcg, "ndcg": ndcg});
    let done = json!({"queries": [scores("student_before", 0.0), scores("student_after", 1.0)]});
    let (status, body) = report(&r, &job, "complete", done).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (page, ids) = list("").await;
    assert_eq!(ids[0], "q4");
    assert_eq!(page["items"][0]["has_detail"], false);
    assert_eq!(page["items"][0]["teacher"], Value::Null);

    // The job is done: its lease is gone.
    let (status, _) = report(
        &r,
        &job,
        "queries",
        json!({"queries": [detail("q5", 0.0, 1.0)]}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}
both_backends!(query_details, query_details_round_trip);

async fn bad_query_requests_are_4xx(store: Store) {
    let r = router(store);
    let run = launch(&r, "bad").await;
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, "{}").await;
    let mut bad_index = detail("q1", 0.1, 0.2);
    bad_index["top_after"] = json!([0, 2]);
    let mut no_id = detail("", 0.1, 0.2);
    no_id["query"] = json!("x");
    let too_many: Vec<Value> = (0..501)
        .map(|i| detail(&format!("q{i}"), 0.0, 0.0))
        .collect();
    for (body, field) in [
        (
            json!({"queries": [bad_index]}),
            Some("queries[0].top_after"),
        ),
        (
            json!({"queries": [detail("ok", 0.0, 0.0), no_id]}),
            Some("queries[1].query_id"),
        ),
        (json!({"queries": too_many}), Some("queries")),
    ] {
        let (status, err) = report(&r, &job, "queries", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert_eq!(err["field"].as_str(), field, "{err}");
    }
    for uri in [
        format!("/api/v1/runs/{run}/queries?order=sideways"),
        format!("/api/v1/runs/{run}/queries?metric=map"),
        format!("/api/v1/runs/{run}/queries?limit=0"),
    ] {
        let (status, err) = send(&r, "GET", &uri, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {err}");
    }
    let (status, _) = send(&r, "GET", "/api/v1/runs/999/queries", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(&r, "GET", "/api/v1/runs/999/queries/q1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing of the rejected batches was stored.
    let (_, page) = send(&r, "GET", &format!("/api/v1/runs/{run}/queries"), None).await;
    assert_eq!(page["total"], 0);
}
both_backends!(bad_query_requests, bad_query_requests_are_4xx);

async fn comparison_fills_the_metric_table(store: Store) {
    let r = router(store);
    let run = launch(&r, "compared").await;
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, "{}").await;
    let eval = |label: &str, map: f64| {
        json!({"label": label, "at_k": 10, "map": map, "mrr": map, "ndcg": map,
               "n_queries": 2, "n_pairs": 20})
    };
    let change = |metric: &str, p: f64| json!({"metric": metric, "ci_low": 0.05, "ci_high": 0.15, "p_value": p});
    let (status, err) = report(
        &r,
        &job,
        "comparison",
        json!({"metrics": [change("map", 1.5)]}),
    )
    .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("metrics[0]"))
    );
    let first = json!({"metrics": [change("map", 0.5)]});
    let (status, body) = report(&r, &job, "comparison", first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A second report replaces the first.
    let second = json!({"metrics": [change("map", 0.002), change("ndcg@10", 0.3)]});
    let (status, _) = report(&r, &job, "comparison", second).await;
    assert_eq!(status, StatusCode::OK);
    let done = json!({"evals": [eval("student_before", 0.4), eval("student_after", 0.5)]});
    let (status, body) = report(&r, &job, "complete", done).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, rows) = send(&r, "GET", &format!("/api/v1/runs/{run}/metrics"), None).await;
    assert_eq!(rows[0]["metric"], "map");
    assert_eq!(rows[0]["p_value"], 0.002);
    assert_eq!(
        (
            rows[0]["delta_ci_low"].as_f64(),
            rows[0]["delta_ci_high"].as_f64()
        ),
        (Some(0.05), Some(0.15))
    );
    assert_eq!(rows[1]["p_value"], Value::Null, "no comparison of mrr@10");
    assert_eq!(rows[2]["p_value"], 0.3);
    let (_, text) = get_text(&r, &format!("/api/v1/runs/{run}/export/metrics.csv")).await;
    let map_line = text.lines().nth(1).unwrap();
    assert!(map_line.ends_with(",0.05,0.15,0.002"), "{map_line}");
}
both_backends!(comparison, comparison_fills_the_metric_table);
