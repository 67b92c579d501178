//! The series endpoint returns at most `max_points` real points and keeps every extreme.

use axum::http::StatusCode;
use distillery_server::Store;
use serde_json::json;

use crate::both_backends;
use crate::common::{claim, launch, register, report, send};

async fn long_series_are_downsampled_keeping_extremes(store: Store) {
    let r = crate::common::router(store);
    let run = launch(&r, "long").await;
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, "{}").await;
    let value = |s: i64| match s {
        1234 => 9.0,
        4321 => -9.0,
        _ => 1.0 / (1.0 + s as f64) + ((s * 7919) % 100) as f64 * 1e-4,
    };
    for chunk in (0..5000i64).collect::<Vec<_>>().chunks(2500) {
        let points: Vec<_> = chunk
            .iter()
            .map(|&s| json!({"name": "loss", "step": s, "value": value(s)}))
            .collect();
        let (status, _) = report(&r, &job, "metrics", json!({ "points": points })).await;
        assert_eq!(status, StatusCode::OK);
    }
    let uri = format!("/api/v1/runs/{run}/series?name=loss&max_points=100");
    let (status, series) = send(&r, "GET", &uri, None).await;
    assert_eq!(status, StatusCode::OK, "{series}");
    assert_eq!(series["total_points"], 5000);
    let steps: Vec<i64> = serde_json::from_value(series["steps"].clone()).unwrap();
    let values: Vec<f64> = serde_json::from_value(series["values"].clone()).unwrap();
    assert!(steps.len() <= 100 && steps.len() >= 50, "{}", steps.len());
    assert!(steps.windows(2).all(|w| w[0] < w[1]));
    for (s, v) in steps.iter().zip(&values) {
        assert!((value(*s) - v).abs() < 1e-12, "a real point: {s} {v}");
    }
    assert!(
        steps.contains(&1234) && steps.contains(&4321),
        "spikes survive"
    );
    assert!(
        steps.contains(&0),
        "the first bucket's maximum is the first point"
    );
    let (_, full) = send(
        &r,
        "GET",
        &format!("/api/v1/runs/{run}/series?name=loss&max_points=100000"),
        None,
    )
    .await;
    assert_eq!(full["steps"].as_array().unwrap().len(), 5000);
    let (status, body) = send(
        &r,
        "GET",
        &format!("/api/v1/runs/{run}/series?name=loss&max_points=1"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("max_points"))
    );
    let (_, empty) = send(
        &r,
        "GET",
        &format!("/api/v1/runs/{run}/series?name=nothing"),
        None,
    )
    .await;
    assert_eq!(empty["total_points"], 0);
}
both_backends!(series, long_series_are_downsampled_keeping_extremes);

/// Every f64 a runner posts comes back with the same bits (serde_json parses floats exactly
/// only with `float_roundtrip`, which the workspace turns on for every crate).
async fn posted_values_round_trip_bit_exactly(store: Store) {
    use rand::{Rng, SeedableRng};
    let r = crate::common::router(store);
    let run = launch(&r, "exact").await;
    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, "{}").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut values = vec![
        1.9668526250636218,
        0.1 + 0.2,
        f64::MIN_POSITIVE,
        -f64::MAX,
        5e-324,
    ];
    while values.len() < 2000 {
        let v = f64::from_bits(rng.random::<u64>());
        if v.is_finite() {
            values.push(v);
        }
    }
    let points: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(s, v)| json!({"name": "loss", "step": s, "value": v}))
        .collect();
    let (status, body) = report(&r, &job, "metrics", json!({ "points": points })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let uri = format!("/api/v1/runs/{run}/series?name=loss&max_points=100000");
    let (status, series) = send(&r, "GET", &uri, None).await;
    assert_eq!(status, StatusCode::OK, "{series}");
    let back: Vec<f64> = serde_json::from_value(series["values"].clone()).unwrap();
    assert_eq!(back.len(), values.len());
    let inexact: Vec<(f64, f64)> = values
        .iter()
        .zip(&back)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .map(|(a, b)| (*a, *b))
        .take(3)
        .collect();
    assert!(inexact.is_empty(), "posted vs returned: {inexact:?}");
}
both_backends!(exact_values, posted_values_round_trip_bit_exactly);
