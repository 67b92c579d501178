//! What a runner reports on a leased job: progress, metric batches, artifacts, completion and
//! failure. Each report checks the lease first (see [`crate::queue`]).

use std::collections::BTreeMap;
use std::path::{Component, Path};

use distillery_api::{
    ArtifactReport, CompleteJob, Event, FailJob, MetricBatch, MetricBatchAck, ProgressReport,
    SeriesPoint, StageKind, Status,
};
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::error::AppError;
use crate::queue::fail_run_in;
use crate::store::{corrupt, denormalize_eval, now_ms, to_json, upsert_query_result, Store};

/// Metric points inserted per statement (6 parameters each).
const METRIC_CHUNK: usize = 500;
/// Largest artifact stored in the database.
pub const MAX_BLOB_BYTES: usize = 4 * 1024 * 1024;

impl Store {
    /// Records progress (and a checkpoint to resume from) and extends the lease.
    pub async fn report_progress(&self, job_id: i64, r: &ProgressReport) -> Result<(), AppError> {
        if !(r.progress.is_finite() && (0.0..=1.0).contains(&r.progress)) {
            return Err(AppError::bad("progress", "must be a number in [0, 1]"));
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let job = self.check_lease(&mut tx, job_id, &r.lease).await?;
        sqlx::query("UPDATE jobs SET lease_until_ms = $1 + lease_ms, progress = $2 WHERE id = $3")
            .bind(now)
            .bind(r.progress)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        // The stage row first (jobs, stages, runs order): the average below then reads every
        // sibling shard's latest progress, not a snapshot from before a sibling finished.
        lock_stage_in(&mut tx, job.stage_id, self.for_update(false)).await?;
        // A sharded stage's progress is the mean over its shards (they differ by at most one
        // pair); its message and counts are the reporting shard's.
        let (message, detail) = match job.shard {
            None => (r.message.clone(), r.detail.clone()),
            Some(s) if s.count == 1 => (r.message.clone(), r.detail.clone()),
            Some(s) => (
                r.message
                    .as_ref()
                    .map(|m| format!("shard {}/{}: {m}", s.index + 1, s.count)),
                None,
            ),
        };
        let progress: f64 = sqlx::query(
            "UPDATE stages SET progress = (SELECT AVG(progress) FROM jobs WHERE stage_id = $1), \
             message = COALESCE($2, message), checkpoint = COALESCE($3, checkpoint) \
             WHERE id = $1 RETURNING progress",
        )
        .bind(job.stage_id)
        .bind(&message)
        .bind(&r.checkpoint)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        self.events().publish(Event::Progress {
            run_id: job.run_id,
            stage_id: job.stage_id,
            kind: job.kind,
            progress,
            message,
            detail,
        });
        Ok(())
    }

    /// Stores metric points; a point already stored for (stage, name, step) is kept as is, so a
    /// batch sent twice stores once.
    pub async fn report_metrics(
        &self,
        job_id: i64,
        b: &MetricBatch,
    ) -> Result<MetricBatchAck, AppError> {
        for (i, p) in b.points.iter().enumerate() {
            if p.name.trim().is_empty() || p.name.len() > 64 {
                return Err(AppError::bad(
                    &format!("points[{i}].name"),
                    "must be 1 to 64 characters",
                ));
            }
            if !p.value.is_finite() {
                return Err(AppError::bad(
                    &format!("points[{i}].value"),
                    "must be a finite number",
                ));
            }
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let job = self.check_lease(&mut tx, job_id, &b.lease).await?;
        let mut inserted = 0;
        for chunk in b.points.chunks(METRIC_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO metrics (run_id, stage_id, name, step, value, time_ms) VALUES ",
            );
            for i in 0..chunk.len() {
                let o = i * 6;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    o + 1,
                    o + 2,
                    o + 3,
                    o + 4,
                    o + 5,
                    o + 6
                ));
            }
            sql.push_str(" ON CONFLICT (stage_id, name, step) DO NOTHING");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in chunk {
                q = q
                    .bind(job.run_id)
                    .bind(job.stage_id)
                    .bind(p.name.clone())
                    .bind(p.step)
                    .bind(p.value)
                    .bind(p.time_ms.unwrap_or(now));
            }
            inserted += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        let mut last: BTreeMap<&str, (i64, f64)> = BTreeMap::new();
        for p in &b.points {
            let e = last.entry(p.name.as_str()).or_insert((p.step, p.value));
            if p.step >= e.0 {
                *e = (p.step, p.value);
            }
        }
        if inserted > 0 {
            self.events().publish(Event::Metrics {
                run_id: job.run_id,
                stage_id: job.stage_id,
                last: last
                    .into_iter()
                    .map(|(name, (step, value))| SeriesPoint {
                        name: name.into(),
                        step,
                        value,
                    })
                    .collect(),
            });
        }
        Ok(MetricBatchAck {
            received: b.points.len(),
            inserted,
        })
    }

    /// Records an artifact: a path under the artifact root, or small content stored inline.
    pub async fn report_artifact(&self, job_id: i64, a: &ArtifactReport) -> Result<i64, AppError> {
        if a.kind.trim().is_empty() {
            return Err(AppError::bad("kind", "must not be empty"));
        }
        if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::bad("sha256", "must be 64 hex digits"));
        }
        let content = match (&a.path, &a.blob_hex) {
            (Some(path), None) => {
                check_relative_path(path)?;
                None
            }
            (None, Some(h)) => Some(decode_blob(h, a)?),
            _ => {
                return Err(AppError::bad(
                    "path",
                    "give exactly one of path and blob_hex",
                ))
            }
        };
        let mut tx = self.begin_write().await?;
        let job = self.check_lease(&mut tx, job_id, &a.lease).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO artifacts (run_id, stage_id, kind, path, content, size_bytes, sha256, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(job.run_id)
        .bind(job.stage_id)
        .bind(&a.kind)
        .bind(&a.path)
        .bind(content)
        .bind(a.size_bytes)
        .bind(a.sha256.to_ascii_lowercase())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        Ok(id)
    }

    /// Finishes a stage: stores its evaluations, merges its manifest facts, unblocks the stages
    /// that waited for it, and finishes the run when every stage is done.
    pub async fn complete_job(&self, job_id: i64, c: &CompleteJob) -> Result<(), AppError> {
        for (i, e) in c.evals.iter().enumerate() {
            if ![e.map, e.mrr, e.ndcg].iter().all(|v| v.is_finite()) {
                return Err(AppError::bad(
                    &format!("evals[{i}]"),
                    "scores must be finite numbers",
                ));
            }
        }
        let now = now_ms();
        let status = if c.skipped {
            Status::Skipped
        } else {
            Status::Done
        };
        let mut tx = self.begin_write().await?;
        let job = self.check_lease(&mut tx, job_id, &c.lease).await?;
        sqlx::query("UPDATE jobs SET status = $1, lease = NULL, progress = 1 WHERE id = $2")
            .bind(status.as_str())
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        // Rows are locked in the order jobs, stages, runs everywhere, so writers never deadlock.
        let lock = self.for_update(false);
        let stage_status =
            finish_stage_in(&mut tx, job.stage_id, lock, now, c.message.as_deref()).await?;
        // Two stages of one run finishing at once (PostgreSQL, READ COMMITTED) would each read
        // the other as unfinished, and neither would unblock the stage waiting for both: the run
        // row serializes them, and the second reads the first's stage as done.
        sqlx::query(AssertSqlSafe(format!(
            "SELECT id FROM runs WHERE id = $1{lock}"
        )))
        .bind(job.run_id)
        .fetch_one(&mut *tx)
        .await?;
        let finished = unblock_dependents(&mut tx, job.run_id).await?;
        store_evals(&mut tx, job.run_id, job.stage_id, c, now).await?;
        merge_manifest(&mut tx, job.run_id, &c.manifest).await?;
        if let Some(stats) = &c.stats {
            merge_stage_stats(&mut tx, job.stage_id, stats).await?;
        }
        let run_status = if finished {
            Status::Done
        } else {
            Status::Running
        };
        sqlx::query("UPDATE runs SET status = $1, updated_ms = $2 WHERE id = $3")
            .bind(run_status.as_str())
            .bind(now)
            .bind(job.run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let attempt = self.job_attempt(job_id).await?;
        self.events().publish(Event::StageStatus {
            run_id: job.run_id,
            stage_id: job.stage_id,
            kind: job.kind,
            status: stage_status,
            attempt,
        });
        if finished {
            self.events().publish(Event::RunStatus {
                run_id: job.run_id,
                status: Status::Done,
            });
        }
        Ok(())
    }

    /// Fails a stage and its run; the run's other work is cancelled.
    pub async fn fail_job(&self, job_id: i64, f: &FailJob) -> Result<(), AppError> {
        let mut tx = self.begin_write().await?;
        let job = self.check_lease(&mut tx, job_id, &f.lease).await?;
        let events = fail_run_in(&mut tx, job.run_id, job.id, &f.message, now_ms()).await?;
        tx.commit().await?;
        for e in events {
            self.events().publish(e);
        }
        Ok(())
    }

    async fn job_attempt(&self, job_id: i64) -> Result<i64, AppError> {
        Ok(sqlx::query("SELECT attempt FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(self.pool())
            .await?
            .try_get(0)?)
    }
}

/// Records that one of a stage's jobs finished: the stage is done (skipped when every job
/// reused its output) once all its jobs are, and meanwhile running, its progress the mean over
/// its shards. Returns the stage's status.
async fn finish_stage_in(
    conn: &mut AnyConnection,
    stage_id: i64,
    lock: &str,
    now: i64,
    message: Option<&str>,
) -> Result<Status, AppError> {
    lock_stage_in(conn, stage_id, lock).await?;
    let row = sqlx::query(
        "SELECT COUNT(*), SUM(CASE WHEN status IN ('done', 'skipped') THEN 1 ELSE 0 END), \
         SUM(CASE WHEN status = 'skipped' THEN 1 ELSE 0 END) FROM jobs WHERE stage_id = $1",
    )
    .bind(stage_id)
    .fetch_one(&mut *conn)
    .await?;
    let (jobs, finished, skipped): (i64, i64, i64) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    if finished < jobs {
        sqlx::query(
            "UPDATE stages SET progress = (SELECT AVG(progress) FROM jobs WHERE stage_id = $1) \
             WHERE id = $1",
        )
        .bind(stage_id)
        .execute(&mut *conn)
        .await?;
        return Ok(Status::Running);
    }
    let status = if skipped == jobs {
        Status::Skipped
    } else {
        Status::Done
    };
    sqlx::query(
        "UPDATE stages SET status = $1, progress = 1, finished_ms = $2, \
         message = COALESCE($3, message) WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(now)
    .bind(message)
    .bind(stage_id)
    .execute(&mut *conn)
    .await?;
    Ok(status)
}

/// Locks a stage row (`lock` is [`Store::for_update`]) before its jobs are counted, so that two
/// shards finishing at once see each other: the last one to take the lock finishes the stage.
pub(crate) async fn lock_stage_in(
    conn: &mut AnyConnection,
    stage_id: i64,
    lock: &str,
) -> Result<(), AppError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM stages WHERE id = $1{lock}"
    )))
    .bind(stage_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(())
}

/// Rejects absolute paths and any `..`: artifact paths are relative to the artifact root.
pub fn check_relative_path(path: &str) -> Result<(), AppError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.contains('\0')
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(())
    } else {
        tracing::warn!(path, "artifact path outside the artifact root rejected");
        Err(AppError::bad(
            "path",
            "must be a relative path inside the artifact root",
        ))
    }
}

fn decode_blob(h: &str, a: &ArtifactReport) -> Result<Vec<u8>, AppError> {
    if h.len() > 2 * MAX_BLOB_BYTES {
        return Err(AppError::bad(
            "blob_hex",
            "stored artifacts are limited to 4 MiB",
        ));
    }
    let bytes = hex::decode(h).map_err(|e| AppError::bad("blob_hex", format!("not hex: {e}")))?;
    if bytes.len() as i64 != a.size_bytes {
        return Err(AppError::bad("size_bytes", "does not match the content"));
    }
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    if !digest.eq_ignore_ascii_case(&a.sha256) {
        return Err(AppError::bad("sha256", "does not match the content"));
    }
    Ok(bytes)
}

async fn store_evals(
    conn: &mut AnyConnection,
    run_id: i64,
    stage_id: i64,
    c: &CompleteJob,
    now: i64,
) -> Result<(), AppError> {
    for e in &c.evals {
        sqlx::query("DELETE FROM eval_results WHERE run_id = $1 AND label = $2")
            .bind(run_id)
            .bind(&e.label)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO eval_results (run_id, stage_id, label, at_k, map, mrr, ndcg, n_queries, n_pairs, ci, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(run_id)
        .bind(stage_id)
        .bind(&e.label)
        .bind(i64::from(e.at_k))
        .bind(e.map)
        .bind(e.mrr)
        .bind(e.ndcg)
        .bind(e.n_queries)
        .bind(e.n_pairs)
        .bind(to_json(&e.ci)?)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        denormalize_eval(conn, run_id, e).await?;
    }
    for q in &c.queries {
        upsert_query_result(conn, run_id, q).await?;
    }
    Ok(())
}

async fn merge_manifest(
    conn: &mut AnyConnection,
    run_id: i64,
    facts: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), AppError> {
    if facts.is_empty() {
        return Ok(());
    }
    let text: String = sqlx::query("SELECT manifest FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let mut manifest: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| corrupt("run manifest", e))?;
    manifest.extend(facts.clone());
    sqlx::query("UPDATE runs SET manifest = $1 WHERE id = $2")
        .bind(to_json(&manifest)?)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Adds a job's stats to its stage's (the stage row is locked by the caller, so shards finishing
/// together add up).
async fn merge_stage_stats(
    conn: &mut AnyConnection,
    stage_id: i64,
    stats: &distillery_api::StageStats,
) -> Result<(), AppError> {
    if !(stats.seconds.is_finite() && stats.seconds >= 0.0) || stats.unit.len() > 32 {
        return Err(AppError::bad(
            "stats",
            "seconds must be a finite non-negative number and unit at most 32 characters",
        ));
    }
    let old: Option<String> = sqlx::query("SELECT stats FROM stages WHERE id = $1")
        .bind(stage_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let merged = match old {
        Some(text) => {
            let mut old: distillery_api::StageStats =
                serde_json::from_str(&text).map_err(|e| corrupt("stage stats", e))?;
            old.merge(stats);
            old
        }
        None => stats.clone(),
    };
    sqlx::query("UPDATE stages SET stats = $1 WHERE id = $2")
        .bind(to_json(&merged)?)
        .bind(stage_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Makes ready every blocked job whose dependencies are all done or skipped. Returns true when
/// every stage of the run has finished.
async fn unblock_dependents(conn: &mut AnyConnection, run_id: i64) -> Result<bool, AppError> {
    let rows = sqlx::query("SELECT kind, status FROM stages WHERE run_id = $1")
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut finished = Vec::new();
    let mut all_finished = true;
    for r in &rows {
        let kind: String = r.try_get(0)?;
        let status: String = r.try_get(1)?;
        if matches!(status.as_str(), "done" | "skipped") {
            finished.extend(StageKind::parse(&kind));
        } else {
            all_finished = false;
        }
    }
    for kind in StageKind::ALL {
        if !finished.contains(&kind) && kind.depends_on().iter().all(|d| finished.contains(d)) {
            sqlx::query("UPDATE jobs SET status = 'ready' WHERE run_id = $1 AND kind = $2 AND status = 'blocked'")
                .bind(run_id)
                .bind(kind.as_str())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(all_finished)
}
