//! What the compare stage produces: per-query results (the scores of each model on each test
//! query, `query_results`), the detail the diff explorer shows (`query_details`), the list
//! sorted by a metric's change, and the paired comparison of each metric (`comparisons`).

use distillery_api::{
    ComparisonReport, MetricComparison, MetricRow, QueryDetail, QueryDetailBatch, QueryDiff,
    QueryResult, QueryScores,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{corrupt, to_json, Store};
use crate::error::AppError;

/// The metric whose change orders the per-query list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryMetric {
    Ap,
    Rr,
    Ndcg,
}

impl QueryMetric {
    pub fn parse(s: &str) -> Option<QueryMetric> {
        Some(match s {
            "ap" => QueryMetric::Ap,
            "rr" => QueryMetric::Rr,
            "ndcg" => QueryMetric::Ndcg,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            QueryMetric::Ap => "ap",
            QueryMetric::Rr => "rr",
            QueryMetric::Ndcg => "ndcg",
        }
    }
}

/// The labels under which a [`QueryDetail`]'s scores are stored in `query_results`.
const DETAIL_LABELS: [&str; 3] = ["student_before", "student_after", "teacher"];

/// Stores (or replaces) one model's scores on one query.
pub(crate) async fn upsert_query_result(
    conn: &mut AnyConnection,
    run_id: i64,
    q: &QueryResult,
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO query_results (run_id, label, query_id, query, ap, rr, ndcg) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (run_id, label, query_id) DO UPDATE SET query = excluded.query, ap = excluded.ap, \
         rr = excluded.rr, ndcg = excluded.ndcg",
    )
    .bind(run_id)
    .bind(&q.label)
    .bind(&q.query_id)
    .bind(&q.query)
    .bind(q.ap)
    .bind(q.rr)
    .bind(q.ndcg)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rejects a detail the explorer could not show: empty id, non-finite scores, bad indices.
fn check_detail(i: usize, d: &QueryDetail) -> Result<(), AppError> {
    let field = |name: &str| format!("queries[{i}].{name}");
    if d.query_id.trim().is_empty() || d.query_id.len() > 128 {
        return Err(AppError::bad(
            &field("query_id"),
            "must be 1 to 128 characters",
        ));
    }
    if ![d.before, d.after, d.teacher]
        .iter()
        .all(QueryScores::is_finite)
    {
        return Err(AppError::bad(
            &field("before"),
            "scores must be finite numbers",
        ));
    }
    for (j, p) in d.passages.iter().enumerate() {
        if ![p.teacher, p.before, p.after].iter().all(|v| v.is_finite()) {
            return Err(AppError::bad(
                &field(&format!("passages[{j}]")),
                "scores must be finite numbers",
            ));
        }
    }
    for (name, list) in [("top_before", &d.top_before), ("top_after", &d.top_after)] {
        if list.iter().any(|&k| k as usize >= d.passages.len()) {
            return Err(AppError::bad(
                &field(name),
                "indices must point into passages",
            ));
        }
    }
    Ok(())
}

fn scores_from(r: &AnyRow, at: usize) -> Result<QueryScores, AppError> {
    Ok(QueryScores {
        ap: r.try_get(at)?,
        rr: r.try_get(at + 1)?,
        ndcg: r.try_get(at + 2)?,
    })
}

impl Store {
    /// Stores a batch of query details for the job's run, and each query's scores under the
    /// `student_before`, `student_after` and `teacher` labels. Idempotent on (run, query_id).
    pub async fn report_query_details(
        &self,
        job_id: i64,
        batch: &QueryDetailBatch,
    ) -> Result<usize, AppError> {
        let max = distillery_api::queries::MAX_QUERY_BATCH;
        if batch.queries.len() > max {
            return Err(AppError::bad(
                "queries",
                format!("at most {max} queries per batch"),
            ));
        }
        for (i, d) in batch.queries.iter().enumerate() {
            check_detail(i, d)?;
        }
        let mut tx = self.begin_write().await?;
        let job = self.check_lease(&mut tx, job_id, &batch.lease).await?;
        for d in &batch.queries {
            sqlx::query(
                "INSERT INTO query_details (run_id, query_id, detail) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id, query_id) DO UPDATE SET detail = excluded.detail",
            )
            .bind(job.run_id)
            .bind(&d.query_id)
            .bind(to_json(d)?)
            .execute(&mut *tx)
            .await?;
            for (label, s) in DETAIL_LABELS
                .into_iter()
                .zip([d.before, d.after, d.teacher])
            {
                let result = QueryResult {
                    label: label.into(),
                    query_id: d.query_id.clone(),
                    query: d.query.clone(),
                    ap: s.ap,
                    rr: s.rr,
                    ndcg: s.ndcg,
                };
                upsert_query_result(&mut tx, job.run_id, &result).await?;
            }
        }
        tx.commit().await?;
        Ok(batch.queries.len())
    }

    /// The queries scored both before and after training, ordered by the change of `metric`
    /// (ties by query id), `limit` from `offset`, plus their count.
    pub async fn list_query_diffs(
        &self,
        run_id: i64,
        metric: QueryMetric,
        descending: bool,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<QueryDiff>, i64), AppError> {
        const PAIRS: &str = "FROM query_results b JOIN query_results a ON a.run_id = b.run_id \
             AND a.query_id = b.query_id AND a.label = 'student_after'";
        const WHERE: &str = "WHERE b.run_id = $1 AND b.label = 'student_before'";
        let col = metric.column();
        let dir = if descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT b.query_id, CASE WHEN a.query = '' THEN b.query ELSE a.query END, \
             b.ap, b.rr, b.ndcg, a.ap, a.rr, a.ndcg, t.ap, t.rr, t.ndcg, a.{col} - b.{col}, \
             CAST(CASE WHEN d.query_id IS NULL THEN 0 ELSE 1 END AS BIGINT) {PAIRS} \
             LEFT JOIN query_results t ON t.run_id = b.run_id AND t.query_id = b.query_id \
             AND t.label = 'teacher' \
             LEFT JOIN query_details d ON d.run_id = b.run_id AND d.query_id = b.query_id \
             {WHERE} ORDER BY a.{col} - b.{col} {dir}, b.query_id LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(run_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        let diffs = rows
            .iter()
            .map(|r| {
                let teacher_ap: Option<f64> = r.try_get(8)?;
                let has_detail: i64 = r.try_get(12)?;
                Ok(QueryDiff {
                    query_id: r.try_get(0)?,
                    query: r.try_get(1)?,
                    before: scores_from(r, 2)?,
                    after: scores_from(r, 5)?,
                    teacher: match teacher_ap {
                        Some(_) => Some(scores_from(r, 8)?),
                        None => None,
                    },
                    delta: r.try_get(11)?,
                    has_detail: has_detail != 0,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let total: i64 = sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) {PAIRS} {WHERE}")))
            .bind(run_id)
            .fetch_one(self.pool())
            .await?
            .try_get(0)?;
        Ok((diffs, total))
    }

    /// The detail of one query of a run.
    pub async fn query_detail(&self, run_id: i64, query_id: &str) -> Result<QueryDetail, AppError> {
        let text: String =
            sqlx::query("SELECT detail FROM query_details WHERE run_id = $1 AND query_id = $2")
                .bind(run_id)
                .bind(query_id)
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| {
                    AppError::NotFound(format!("detail of query {query_id} of run {run_id}"))
                })?
                .try_get(0)?;
        serde_json::from_str(&text).map_err(|e| corrupt("query detail", e))
    }
}

impl Store {
    /// Stores the compare stage's comparison for the job's run, replacing an earlier one.
    pub async fn report_comparison(
        &self,
        job_id: i64,
        c: &ComparisonReport,
    ) -> Result<(), AppError> {
        for (i, m) in c.metrics.iter().enumerate() {
            if m.metric.trim().is_empty() || m.metric.len() > 32 {
                return Err(AppError::bad(
                    &format!("metrics[{i}].metric"),
                    "must be 1 to 32 characters",
                ));
            }
            if ![m.ci_low, m.ci_high, m.p_value]
                .iter()
                .all(|v| v.is_finite())
                || !(0.0..=1.0).contains(&m.p_value)
            {
                return Err(AppError::bad(
                    &format!("metrics[{i}]"),
                    "CI bounds must be finite and the p-value in [0, 1]",
                ));
            }
        }
        let mut tx = self.begin_write().await?;
        let job = self.check_lease(&mut tx, job_id, &c.lease).await?;
        sqlx::query("DELETE FROM comparisons WHERE run_id = $1")
            .bind(job.run_id)
            .execute(&mut *tx)
            .await?;
        for m in &c.metrics {
            sqlx::query(
                "INSERT INTO comparisons (run_id, metric, ci_low, ci_high, p_value) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(job.run_id)
            .bind(&m.metric)
            .bind(m.ci_low)
            .bind(m.ci_high)
            .bind(m.p_value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The run's metric table: evaluations before/after/teacher with the paired comparison.
    pub async fn metric_rows(&self, run_id: i64) -> Result<Vec<MetricRow>, AppError> {
        let rows = crate::export::metric_rows(&self.list_evals(run_id).await?);
        Ok(crate::export::with_comparisons(
            rows,
            &self.list_comparisons(run_id).await?,
        ))
    }

    /// The run's paired comparison, one entry per metric.
    pub async fn list_comparisons(&self, run_id: i64) -> Result<Vec<MetricComparison>, AppError> {
        let rows = sqlx::query(
            "SELECT metric, ci_low, ci_high, p_value FROM comparisons WHERE run_id = $1 ORDER BY metric",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MetricComparison {
                    metric: r.try_get(0)?,
                    ci_low: r.try_get(1)?,
                    ci_high: r.try_get(2)?,
                    p_value: r.try_get(3)?,
                })
            })
            .collect()
    }
}
