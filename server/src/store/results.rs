//! Reading what runs produced: metric series, evaluations, per-query results, artifacts.

use distillery_api::{Artifact, EvalResult, QueryResult};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{corrupt, Store};
use crate::error::AppError;

/// Where an artifact's content is.
pub enum ArtifactContent {
    /// A path relative to the artifact root.
    Path(String),
    /// Stored in the database.
    Stored(Vec<u8>),
}

impl Store {
    /// Every point of one series of a run, ascending by step.
    pub async fn series_points(
        &self,
        run_id: i64,
        name: &str,
    ) -> Result<(Vec<i64>, Vec<f64>), AppError> {
        let rows = sqlx::query(
            "SELECT step, value FROM metrics WHERE run_id = $1 AND name = $2 ORDER BY step",
        )
        .bind(run_id)
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        step_value_columns(&rows)
    }

    /// One series of a run reduced in the database to at most about `max_points` points: the
    /// steps are cut into `max_points / 2` equal ranges and each range keeps the points holding
    /// its minimum and its maximum. Returns the stored point count too. Ties can keep a few
    /// extra points; the caller bounds the result with [`crate::series::downsample`].
    pub async fn series_extremes(
        &self,
        run_id: i64,
        name: &str,
        max_points: usize,
    ) -> Result<(i64, Vec<i64>, Vec<f64>), AppError> {
        let row = sqlx::query(
            "SELECT COUNT(*), MIN(step), MAX(step) FROM metrics WHERE run_id = $1 AND name = $2",
        )
        .bind(run_id)
        .bind(name)
        .fetch_one(self.pool())
        .await?;
        let total: i64 = row.try_get(0)?;
        if total as usize <= max_points {
            let (steps, values) = self.series_points(run_id, name).await?;
            return Ok((total, steps, values));
        }
        let (lo, hi): (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
        let n_buckets = (max_points / 2).max(1) as i64;
        let span = hi - lo + 1;
        let rows = sqlx::query(
            "WITH b AS (SELECT step, value, (step - $3) * $4 / $5 AS bucket FROM metrics \
                        WHERE run_id = $1 AND name = $2), \
                  agg AS (SELECT bucket, MIN(value) AS lo, MAX(value) AS hi FROM b GROUP BY bucket) \
             SELECT b.step, b.value FROM b JOIN agg ON b.bucket = agg.bucket \
             AND (b.value = agg.lo OR b.value = agg.hi) ORDER BY b.step",
        )
        .bind(run_id)
        .bind(name)
        .bind(lo)
        .bind(n_buckets)
        .bind(span)
        .fetch_all(self.pool())
        .await?;
        let (steps, values) = step_value_columns(&rows)?;
        Ok((total, steps, values))
    }

    /// The names of a run's series.
    pub async fn series_names(&self, run_id: i64) -> Result<Vec<String>, AppError> {
        let rows = sqlx::query("SELECT DISTINCT name FROM metrics WHERE run_id = $1 ORDER BY name")
            .bind(run_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn list_evals(&self, run_id: i64) -> Result<Vec<EvalResult>, AppError> {
        let rows = sqlx::query(
            "SELECT label, at_k, map, mrr, ndcg, n_queries, n_pairs, ci FROM eval_results \
             WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(eval_from_row).collect()
    }

    pub async fn list_query_results(&self, run_id: i64) -> Result<Vec<QueryResult>, AppError> {
        let rows = sqlx::query(
            "SELECT label, query_id, query, ap, rr, ndcg FROM query_results WHERE run_id = $1 \
             ORDER BY query_id, label",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QueryResult {
                    label: r.try_get(0)?,
                    query_id: r.try_get(1)?,
                    query: r.try_get(2)?,
                    ap: r.try_get(3)?,
                    rr: r.try_get(4)?,
                    ndcg: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn list_artifacts(&self, run_id: i64) -> Result<Vec<Artifact>, AppError> {
        let rows = sqlx::query(
            "SELECT id, run_id, stage_id, kind, path, CAST(CASE WHEN content IS NULL THEN 0 ELSE 1 END AS BIGINT), size_bytes, sha256, created_ms \
             FROM artifacts WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(artifact_from_row).collect()
    }

    /// An artifact's record and where its content is.
    pub async fn artifact_content(&self, id: i64) -> Result<(Artifact, ArtifactContent), AppError> {
        let row = sqlx::query(
            "SELECT id, run_id, stage_id, kind, path, CAST(CASE WHEN content IS NULL THEN 0 ELSE 1 END AS BIGINT), size_bytes, sha256, created_ms, content \
             FROM artifacts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| AppError::NotFound(format!("artifact {id}")))?;
        let artifact = artifact_from_row(&row)?;
        let content: Option<Vec<u8>> = row.try_get(9)?;
        let content = match (content, &artifact.path) {
            (Some(bytes), _) => ArtifactContent::Stored(bytes),
            (None, Some(path)) => ArtifactContent::Path(path.clone()),
            (None, None) => return Err(corrupt("artifact", "neither path nor content")),
        };
        Ok((artifact, content))
    }
}

fn eval_from_row(r: &AnyRow) -> Result<EvalResult, AppError> {
    let at_k: i64 = r.try_get(1)?;
    let ci: String = r.try_get(7)?;
    Ok(EvalResult {
        label: r.try_get(0)?,
        at_k: u32::try_from(at_k).map_err(|e| corrupt("eval at_k", e))?,
        map: r.try_get(2)?,
        mrr: r.try_get(3)?,
        ndcg: r.try_get(4)?,
        n_queries: r.try_get(5)?,
        n_pairs: r.try_get(6)?,
        ci: serde_json::from_str(&ci).map_err(|e| corrupt("eval ci", e))?,
    })
}

fn artifact_from_row(r: &AnyRow) -> Result<Artifact, AppError> {
    let stored: i64 = r.try_get(5)?;
    Ok(Artifact {
        id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        stage_id: r.try_get(2)?,
        kind: r.try_get(3)?,
        path: r.try_get(4)?,
        stored: stored != 0,
        size_bytes: r.try_get(6)?,
        sha256: r.try_get(7)?,
        created_ms: r.try_get(8)?,
    })
}

/// Splits `(step, value)` rows into their two columns.
fn step_value_columns(rows: &[AnyRow]) -> Result<(Vec<i64>, Vec<f64>), AppError> {
    let mut steps = Vec::with_capacity(rows.len());
    let mut values = Vec::with_capacity(rows.len());
    for r in rows {
        steps.push(r.try_get(0)?);
        values.push(r.try_get(1)?);
    }
    Ok((steps, values))
}
