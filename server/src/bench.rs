//! `distillery-server bench`: seeds runs with long loss curves, then times the run list and
//! series endpoints in-process (no network), and reports p50/p95.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use distillery_api::{NewRun, RunConfig};
use sqlx::{AssertSqlSafe, Row};
use tower::ServiceExt;

use crate::error::AppError;
use crate::store::{now_ms, Backend, Store};
use crate::{app, AppState};

/// What to seed and how often to ask.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    pub n_runs: usize,
    pub n_points: i64,
    pub n_requests: usize,
}

/// Latency percentiles of one endpoint.
#[derive(Debug, Clone)]
pub struct Timing {
    pub endpoint: String,
    pub p50: Duration,
    pub p95: Duration,
    pub max: Duration,
}

/// The `q`-quantile (0..=1) of sorted durations, nearest rank.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Seeds `plan.n_runs` runs, each with a `loss` series of `plan.n_points` points.
pub async fn seed(store: &Store, plan: &BenchPlan) -> Result<(), AppError> {
    let config = RunConfig {
        teacher: "/models/qwen3-reranker-8b".into(),
        student: "/models/bge-reranker-v2-m3".into(),
        train_data: "train.jsonl.gz".into(),
        test_data: "test.jsonl.gz".into(),
        ..RunConfig::default()
    };
    let generate = match store.backend() {
        Backend::Postgres => {
            "INSERT INTO metrics (run_id, stage_id, name, step, value, time_ms) \
             SELECT $1, $2, 'loss', s, 2.0 / (1 + s * 0.001) + ((s * 7919) % 1000) * 0.00005, $3 + s \
             FROM generate_series(0, $4 - 1) AS s"
        }
        Backend::Sqlite => {
            "WITH RECURSIVE seq(s) AS (SELECT 0 UNION ALL SELECT s + 1 FROM seq WHERE s + 1 < $4) \
             INSERT INTO metrics (run_id, stage_id, name, step, value, time_ms) \
             SELECT $1, $2, 'loss', s, 2.0 / (1 + s * 0.001) + ((s * 7919) % 1000) * 0.00005, $3 + s FROM seq"
        }
    };
    for i in 0..plan.n_runs {
        let run = store
            .create_run(&NewRun {
                experiment_id: None,
                name: format!("bench-{i}"),
                config: config.clone(),
                tags: vec![format!("group-{}", i % 10)],
            })
            .await?;
        let stage: i64 = sqlx::query("SELECT id FROM stages WHERE run_id = $1 AND kind = 'train'")
            .bind(run.id)
            .fetch_one(store.pool())
            .await?
            .try_get(0)?;
        let score = 0.3 + ((i * 7919) % 1000) as f64 * 0.0003;
        let gain = ((i * 104_729) % 200) as f64 * 0.001 - 0.05;
        sqlx::query(
            "UPDATE runs SET status = 'done', metric_map = $1, metric_mrr = $2, metric_ndcg = $3, \
             before_map = $1 - $4, before_mrr = $2 - $4, before_ndcg = $3 - $4 WHERE id = $5",
        )
        .bind(score)
        .bind(score + 0.05)
        .bind(score + 0.02)
        .bind(gain)
        .bind(run.id)
        .execute(store.pool())
        .await?;
        sqlx::query(AssertSqlSafe(generate))
            .bind(run.id)
            .bind(stage)
            .bind(now_ms())
            .bind(plan.n_points)
            .execute(store.pool())
            .await?;
        if (i + 1) % 100 == 0 {
            tracing::info!(runs = i + 1, "seeded");
        }
    }
    let analyze = match store.backend() {
        Backend::Postgres => "VACUUM ANALYZE metrics",
        Backend::Sqlite => "ANALYZE",
    };
    sqlx::query(analyze).execute(store.pool()).await?;
    Ok(())
}

/// Times `n_requests` GETs of each URI produced by `uri(i)`.
async fn time_endpoint(
    router: &axum::Router,
    endpoint: &str,
    n_requests: usize,
    uri: impl Fn(usize) -> String,
) -> Result<Timing, AppError> {
    let mut times = Vec::with_capacity(n_requests);
    for i in 0..n_requests {
        let req = Request::get(uri(i))
            .body(Body::empty())
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let start = Instant::now();
        let resp = router
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let status = resp.status();
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        times.push(start.elapsed());
        if status != StatusCode::OK {
            return Err(AppError::Internal(format!("{endpoint} answered {status}")));
        }
    }
    times.sort();
    Ok(Timing {
        endpoint: endpoint.into(),
        p50: percentile(&times, 0.5),
        p95: percentile(&times, 0.95),
        max: times.last().copied().unwrap_or_default(),
    })
}

/// Times the run list (sorted by a key metric, filtered by tag, filtered by substring and metric
/// ranges sorted by a change, paginated) and the series endpoint on a seeded store.
pub async fn measure(store: &Store, plan: &BenchPlan) -> Result<Vec<Timing>, AppError> {
    let router = app(
        AppState {
            store: store.clone(),
        },
        None,
    );
    let ids: Vec<i64> = sqlx::query("SELECT id FROM runs ORDER BY id")
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Err(AppError::Internal("no runs to measure; seed first".into()));
    }
    let n = plan.n_requests;
    let mut out = vec![
        time_endpoint(&router, "GET /runs?limit=50&sort=map", n, |i| {
            format!(
                "/api/v1/runs?limit=50&offset={}&sort=map",
                (i * 50) % ids.len().max(1)
            )
        })
        .await?,
        time_endpoint(&router, "GET /runs?tag=…&sort=created", n, |i| {
            format!("/api/v1/runs?limit=50&tag=group-{}", i % 10)
        })
        .await?,
        time_endpoint(
            &router,
            "GET /runs?teacher=…&ranges…&sort=map_delta",
            n,
            |i| {
                format!(
                    "/api/v1/runs?limit=50&teacher=QWEN3&map_min={}&map_delta_min=0.0{}&sort=map_delta",
                    0.3 + (i % 5) as f64 * 0.01,
                    i % 10
                )
            },
        )
        .await?,
    ];
    out.push(
        time_endpoint(
            &router,
            "GET /runs/{id}/series?name=loss&max_points=2000",
            n,
            |i| {
                format!(
                    "/api/v1/runs/{}/series?name=loss&max_points=2000",
                    ids[(i * 7919) % ids.len()]
                )
            },
        )
        .await?,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&d, 0.95), Duration::from_millis(95));
        assert_eq!(percentile(&d[..1], 0.95), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
