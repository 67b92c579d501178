//! Runs and their stages: create (expanding into stage jobs), read, list with filters, delete.

use distillery_api::{
    EvalResult, Event, KeyMetrics, NewRun, Run, RunConfig, Stage, StageKind, Status, KEY_EVAL_LABEL,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::run_filter::{order_by, RunFilter, RunSort};

use super::{corrupt, now_ms, stage_kind_at, to_json, Store};
use crate::error::AppError;

const RUN_COLUMNS: &str = "SELECT id, experiment_id, name, status, config, tags, created_ms, \
     updated_ms, manifest, metric_map, metric_mrr, metric_ndcg, before_map, before_mrr, \
     before_ndcg FROM runs";

const STAGE_COLUMNS: &str = "SELECT id, run_id, kind, status, progress, attempt, runner, \
     message, started_ms, finished_ms, checkpoint, stats FROM stages";

impl Store {
    /// Records a run and expands it into one stage and one job per [`StageKind`] (one job per
    /// shard for the teacher-scoring stages of a sharded run); jobs without dependencies are
    /// ready at once, the others wait for theirs.
    pub async fn create_run(&self, new: &NewRun) -> Result<Run, AppError> {
        let now = now_ms();
        let mut tags = new.tags.clone();
        tags.sort();
        tags.dedup();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO runs (experiment_id, name, status, config, tags, created_ms, updated_ms, \
             teacher, student, dataset) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(new.experiment_id)
        .bind(&new.name)
        .bind(Status::Queued.as_str())
        .bind(to_json(&new.config)?)
        .bind(to_json(&tags)?)
        .bind(now)
        .bind(now)
        .bind(&new.config.teacher)
        .bind(&new.config.student)
        .bind(&new.config.train_data)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        for tag in &tags {
            sqlx::query("INSERT INTO run_tags (run_id, tag) VALUES ($1, $2)")
                .bind(id)
                .bind(tag)
                .execute(&mut *tx)
                .await?;
        }
        for kind in StageKind::ALL {
            let stage: i64 = sqlx::query(
                "INSERT INTO stages (run_id, kind, status) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(id)
            .bind(kind.as_str())
            .bind(Status::Queued.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            let job_status = if kind.depends_on().is_empty() {
                "ready"
            } else {
                "blocked"
            };
            // A sharded teacher-scoring stage gets one job per shard, each claimable alone.
            let shards = if kind.is_teacher_scoring() {
                i64::from(new.config.teacher_shards.max(1))
            } else {
                1
            };
            for index in 0..shards {
                sqlx::query(
                    "INSERT INTO jobs (run_id, stage_id, kind, status, created_ms, shard_index, \
                     shard_count) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(stage)
                .bind(kind.as_str())
                .bind(job_status)
                .bind(now)
                .bind(index)
                .bind(shards)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.events().publish(Event::RunCreated { run_id: id });
        Ok(Run {
            id,
            experiment_id: new.experiment_id,
            name: new.name.clone(),
            status: Status::Queued,
            config: new.config.clone(),
            tags,
            created_ms: now,
            updated_ms: now,
            manifest: serde_json::json!({}),
            metrics: None,
            before: None,
        })
    }

    pub async fn get_run(&self, id: i64) -> Result<Run, AppError> {
        let row = sqlx::query(AssertSqlSafe(format!("{RUN_COLUMNS} WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| AppError::NotFound(format!("run {id}")))?;
        run_from_row(&row)
    }

    /// `limit` runs from `offset` matching `filter`, in the given order, plus the total count.
    pub async fn list_runs(
        &self,
        filter: &RunFilter,
        sort: RunSort,
        descending: bool,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Run>, i64), AppError> {
        let filter = filter.to_sql();
        let n = filter.len();
        let sql = format!(
            "{RUN_COLUMNS}{}{} LIMIT ${} OFFSET ${}",
            filter.sql,
            order_by(sort, descending),
            n + 1,
            n + 2
        );
        let rows = filter
            .bind(sqlx::query(AssertSqlSafe(sql)))
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        let count = format!("SELECT COUNT(*) FROM runs{}", filter.sql);
        let total: i64 = filter
            .bind(sqlx::query(AssertSqlSafe(count)))
            .fetch_one(self.pool())
            .await?
            .try_get(0)?;
        let runs = rows.iter().map(run_from_row).collect::<Result<_, _>>()?;
        Ok((runs, total))
    }

    /// Deletes a run and everything recorded about it.
    pub async fn delete_run(&self, id: i64) -> Result<(), AppError> {
        let done = sqlx::query("DELETE FROM runs WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(AppError::NotFound(format!("run {id}")));
        }
        self.events().publish(Event::RunDeleted { run_id: id });
        Ok(())
    }

    pub async fn list_stages(&self, run_id: i64) -> Result<Vec<Stage>, AppError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{STAGE_COLUMNS} WHERE run_id = $1 ORDER BY id"
        )))
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(stage_from_row).collect()
    }
}

fn run_from_row(r: &AnyRow) -> Result<Run, AppError> {
    let status: String = r.try_get(3)?;
    let config: String = r.try_get(4)?;
    let tags: String = r.try_get(5)?;
    let manifest: String = r.try_get(8)?;
    let map: Option<f64> = r.try_get(9)?;
    let mrr: Option<f64> = r.try_get(10)?;
    let ndcg: Option<f64> = r.try_get(11)?;
    let metrics = key_metrics(map, mrr, ndcg);
    let before = key_metrics(r.try_get(12)?, r.try_get(13)?, r.try_get(14)?);
    Ok(Run {
        id: r.try_get(0)?,
        experiment_id: r.try_get(1)?,
        name: r.try_get(2)?,
        status: Status::parse(&status).ok_or_else(|| corrupt("run status", &status))?,
        config: serde_json::from_str::<RunConfig>(&config).map_err(|e| corrupt("run config", e))?,
        tags: serde_json::from_str(&tags).map_err(|e| corrupt("run tags", e))?,
        created_ms: r.try_get(6)?,
        updated_ms: r.try_get(7)?,
        manifest: serde_json::from_str(&manifest).map_err(|e| corrupt("run manifest", e))?,
        metrics,
        before,
    })
}

fn key_metrics(map: Option<f64>, mrr: Option<f64>, ndcg: Option<f64>) -> Option<KeyMetrics> {
    match (map, mrr, ndcg) {
        (Some(map), Some(mrr), Some(ndcg)) => Some(KeyMetrics { map, mrr, ndcg }),
        _ => None,
    }
}

/// Copies an evaluation's scores into the run's columns that the run list filters and sorts
/// on: `student_after` (the key metrics) and `student_before` (for the changes).
pub(crate) async fn denormalize_eval(
    conn: &mut AnyConnection,
    run_id: i64,
    e: &EvalResult,
) -> Result<(), AppError> {
    let columns = match e.label.as_str() {
        KEY_EVAL_LABEL => "metric_map = $1, metric_mrr = $2, metric_ndcg = $3",
        "student_before" => "before_map = $1, before_mrr = $2, before_ndcg = $3",
        _ => return Ok(()),
    };
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE runs SET {columns} WHERE id = $4"
    )))
    .bind(e.map)
    .bind(e.mrr)
    .bind(e.ndcg)
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn stage_from_row(r: &AnyRow) -> Result<Stage, AppError> {
    let status: String = r.try_get(3)?;
    Ok(Stage {
        id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        kind: stage_kind_at(r, 2, "stage kind")?,
        status: Status::parse(&status).ok_or_else(|| corrupt("stage status", &status))?,
        progress: r.try_get(4)?,
        attempt: r.try_get(5)?,
        runner: r.try_get(6)?,
        message: r.try_get(7)?,
        started_ms: r.try_get(8)?,
        finished_ms: r.try_get(9)?,
        checkpoint: r.try_get(10)?,
        stats: r
            .try_get::<Option<String>, _>(11)?
            .map(|t| serde_json::from_str(&t).map_err(|e| corrupt("stage stats", e)))
            .transpose()?,
    })
}
