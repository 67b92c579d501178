//! The job queue: runners register, claim ready jobs under a lease, report, and finish.
//!
//! Architecture invariant: a job is handed to at most one runner at a time. A claim picks the
//! oldest ready job inside a write transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
//! `BEGIN IMMEDIATE` on SQLite) and every later report must present the lease token the claim
//! returned. A lease that runs out puts the job back in the queue (see [`Store::reap_expired`]);
//! after [`MAX_ATTEMPTS`] claims the stage and its run fail instead.

use std::time::Duration;

use distillery_api::{
    ClaimRequest, Event, Job, JobState, RegisterRunner, ReleaseJob, RunConfig, Runner, StageKind,
    Status,
};
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::auth::new_secret;
use crate::error::AppError;
use crate::shards::shard_of;
use crate::store::{corrupt, now_ms, stage_kind_at, Backend, Store};

/// Claims of one job before an expired lease fails it for good.
pub const MAX_ATTEMPTS: i64 = 3;
/// The lease of a claim that names none.
pub const DEFAULT_LEASE_MS: i64 = 60_000;
/// How recently a runner must have sent a heartbeat to keep the jobs that need its trained
/// student (see [`Store::claim`]).
pub const AFFINITY_MS: i64 = 60_000;
/// The longest lease a claim may ask for.
pub const MAX_LEASE_MS: i64 = 3_600_000;

/// A job row as a report sees it, after its lease was checked.
pub(crate) struct LeasedJob {
    pub id: i64,
    pub run_id: i64,
    pub stage_id: i64,
    pub kind: StageKind,
    /// The shard this job scores, when its stage is sharded.
    pub shard: Option<distillery_api::Shard>,
}

impl Store {
    /// `FOR UPDATE` on PostgreSQL (SQLite's write transaction already excludes other writers).
    pub(crate) fn for_update(&self, skip_locked: bool) -> &'static str {
        match (self.backend(), skip_locked) {
            (Backend::Sqlite, _) => "",
            (Backend::Postgres, false) => " FOR UPDATE",
            (Backend::Postgres, true) => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// Registers a runner by name, or refreshes the record of a known one.
    pub async fn register_runner(&self, r: &RegisterRunner) -> Result<Runner, AppError> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO runners (name, device, memory_bytes, registered_ms, last_heartbeat_ms, catalog) \
             VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (name) DO UPDATE SET device = excluded.device, \
             memory_bytes = excluded.memory_bytes, last_heartbeat_ms = excluded.last_heartbeat_ms, \
             catalog = excluded.catalog \
             RETURNING id, registered_ms",
        )
        .bind(&r.name)
        .bind(&r.device)
        .bind(r.memory_bytes)
        .bind(now)
        .bind(serde_json::to_string(&r.catalog).unwrap_or_else(|_| "{}".into()))
        .fetch_one(self.pool())
        .await?;
        Ok(Runner {
            id: row.try_get(0)?,
            name: r.name.clone(),
            device: r.device.clone(),
            memory_bytes: r.memory_bytes,
            registered_ms: row.try_get(1)?,
            last_heartbeat_ms: now,
            catalog: r.catalog.clone(),
        })
    }

    pub async fn list_runners(&self) -> Result<Vec<Runner>, AppError> {
        let rows = sqlx::query(
            "SELECT id, name, device, memory_bytes, registered_ms, last_heartbeat_ms, catalog \
             FROM runners ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Runner {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    device: r.try_get(2)?,
                    memory_bytes: r.try_get(3)?,
                    registered_ms: r.try_get(4)?,
                    last_heartbeat_ms: r.try_get(5)?,
                    // Written by this server from a typed value; an unreadable one reads as empty.
                    catalog: serde_json::from_str(&r.try_get::<String, _>(6)?).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Records a heartbeat and extends the leases of the runner's jobs.
    pub async fn heartbeat(&self, runner_id: i64) -> Result<(), AppError> {
        let now = now_ms();
        let done = sqlx::query("UPDATE runners SET last_heartbeat_ms = $1 WHERE id = $2")
            .bind(now)
            .bind(runner_id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(AppError::NotFound(format!("runner {runner_id}")));
        }
        sqlx::query(
            "UPDATE jobs SET lease_until_ms = $1 + lease_ms WHERE runner_id = $2 AND status = 'leased'",
        )
        .bind(now)
        .bind(runner_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Leases the oldest ready job to the runner, or returns `None` when nothing is ready.
    pub async fn claim(&self, runner_id: i64, req: &ClaimRequest) -> Result<Option<Job>, AppError> {
        let lease_ms = req.lease_ms.unwrap_or(DEFAULT_LEASE_MS);
        if !(1..=MAX_LEASE_MS).contains(&lease_ms) {
            return Err(AppError::bad(
                "lease_ms",
                format!("must be between 1 and {MAX_LEASE_MS}"),
            ));
        }
        self.reap_expired().await?;
        let runner_name: String = sqlx::query("SELECT name FROM runners WHERE id = $1")
            .bind(runner_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| AppError::NotFound(format!("runner {runner_id}")))?
            .try_get(0)?;
        let kinds_sql = if req.kinds.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = req
                .kinds
                .iter()
                .map(|k| format!("'{}'", k.as_str()))
                .collect();
            format!(" AND j.kind IN ({})", names.join(", "))
        };
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // Affinity: the stages that read the trained student (`eval_after`, then `compare`) wait
        // for the runner that trained it while that runner is alive, so that no other runner
        // trains it again for want of the model files; a runner that went silent frees them.
        let picked = sqlx::query(AssertSqlSafe(format!(
            "SELECT j.id FROM jobs j WHERE j.status = 'ready'{kinds_sql} \
             AND NOT (j.kind IN ('eval_after', 'compare') AND EXISTS (\
               SELECT 1 FROM jobs t JOIN runners r ON r.id = t.runner_id \
               WHERE t.run_id = j.run_id AND t.kind = 'train' AND t.status IN ('done', 'skipped') \
               AND t.runner_id <> $1 AND r.last_heartbeat_ms > $2)) \
             ORDER BY j.id LIMIT 1{}",
            self.for_update(true)
        )))
        .bind(runner_id)
        .bind(now - AFFINITY_MS)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(picked) = picked else {
            return Ok(None);
        };
        let job_id: i64 = picked.try_get(0)?;
        let lease = new_secret();
        let row = sqlx::query(
            "UPDATE jobs SET status = 'leased', attempt = attempt + 1, runner_id = $1, lease = $2, \
             lease_ms = $3, lease_until_ms = $4 WHERE id = $5 \
             RETURNING run_id, stage_id, kind, attempt, shard_index, shard_count",
        )
        .bind(runner_id)
        .bind(&lease)
        .bind(lease_ms)
        .bind(now + lease_ms)
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await?;
        let run_id: i64 = row.try_get(0)?;
        let stage_id: i64 = row.try_get(1)?;
        let kind = stage_kind_at(&row, 2, "job kind")?;
        let attempt: i64 = row.try_get(3)?;
        let shard = shard_of(kind, row.try_get(4)?, row.try_get(5)?)?;
        let stage = sqlx::query(
            "UPDATE stages SET status = 'running', runner = $1, attempt = $2, \
             started_ms = COALESCE(started_ms, $3) WHERE id = $4 RETURNING checkpoint",
        )
        .bind(&runner_name)
        .bind(attempt)
        .bind(now)
        .bind(stage_id)
        .fetch_one(&mut *tx)
        .await?;
        let checkpoint: Option<String> = stage.try_get(0)?;
        let run_row = sqlx::query(
            "UPDATE runs SET status = 'running', updated_ms = $1 WHERE id = $2 RETURNING config",
        )
        .bind(now)
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await?;
        let config: String = run_row.try_get(0)?;
        let config: RunConfig =
            serde_json::from_str(&config).map_err(|e| corrupt("run config", e))?;
        tx.commit().await?;
        let events = self.events();
        events.publish(Event::RunStatus {
            run_id,
            status: Status::Running,
        });
        events.publish(Event::StageStatus {
            run_id,
            stage_id,
            kind,
            status: Status::Running,
            attempt,
        });
        Ok(Some(Job {
            id: job_id,
            run_id,
            stage_id,
            kind,
            attempt,
            lease,
            lease_until_ms: now + lease_ms,
            config,
            checkpoint,
            shard,
        }))
    }

    /// Requeues every job whose lease ran out, or fails it after [`MAX_ATTEMPTS`] claims.
    /// Returns how many jobs it touched.
    pub async fn reap_expired(&self) -> Result<usize, AppError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, run_id, stage_id, kind, attempt, attempt - releases FROM jobs \
             WHERE status = 'leased' AND lease_until_ms < $1{}",
            self.for_update(true)
        )))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut events = Vec::new();
        for r in &rows {
            let (id, run_id, stage_id): (i64, i64, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let kind = stage_kind_at(r, 3, "job kind")?;
            let attempt: i64 = r.try_get(4)?;
            let counted: i64 = r.try_get(5)?;
            if counted >= MAX_ATTEMPTS {
                tracing::warn!(
                    job = id,
                    run = run_id,
                    attempt,
                    "lease expired too often; failing the run"
                );
                let message = format!("lease expired {counted} times");
                events.extend(fail_run_in(&mut tx, run_id, id, &message, now).await?);
                continue;
            }
            // Only a job still leased goes back: an earlier row of this pass may have failed its
            // run and cancelled it (two shards of one run expiring together).
            let requeued = sqlx::query(
                "UPDATE jobs SET status = 'ready', lease = NULL, lease_until_ms = NULL, \
                 runner_id = NULL, progress = 0 WHERE id = $1 AND status = 'leased'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if requeued == 0 {
                continue;
            }
            tracing::info!(job = id, run = run_id, attempt, "lease expired; requeued");
            let status = requeue_stage_in(&mut tx, stage_id, self.for_update(false)).await?;
            events.push(Event::StageStatus {
                run_id,
                stage_id,
                kind,
                status,
                attempt,
            });
        }
        tx.commit().await?;
        for e in events {
            self.events().publish(e);
        }
        Ok(rows.len())
    }

    /// Checks that `lease` is the current lease of job `job_id` and locks the job row.
    pub(crate) async fn check_lease(
        &self,
        conn: &mut AnyConnection,
        job_id: i64,
        lease: &str,
    ) -> Result<LeasedJob, AppError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT run_id, stage_id, kind, status, lease, shard_index, shard_count FROM jobs \
             WHERE id = $1{}",
            self.for_update(false)
        )))
        .bind(job_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("job {job_id}")))?;
        let status: String = row.try_get(3)?;
        let current: Option<String> = row.try_get(4)?;
        if status != "leased" || current.as_deref() != Some(lease) {
            return Err(AppError::Conflict(format!(
                "job {job_id} is not leased with this lease (status {status}); stop working on it"
            )));
        }
        let kind = stage_kind_at(&row, 2, "job kind")?;
        Ok(LeasedJob {
            id: job_id,
            run_id: row.try_get(0)?,
            stage_id: row.try_get(1)?,
            kind,
            shard: shard_of(kind, row.try_get(5)?, row.try_get(6)?)?,
        })
    }

    /// Cancels a run: every unfinished job and stage is cancelled; runners learn it on their
    /// next report (409).
    pub async fn cancel_run(&self, run_id: i64) -> Result<(), AppError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // No row lock on the run here: rows are locked in the order jobs, stages, runs.
        let status: String = sqlx::query("SELECT status FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("run {run_id}")))?
            .try_get(0)?;
        if Status::parse(&status).is_some_and(Status::is_final) {
            return Err(AppError::Conflict(format!(
                "run {run_id} is already {status}"
            )));
        }
        close_run_in(&mut tx, run_id, Status::Cancelled, now).await?;
        tx.commit().await?;
        self.events().publish(Event::RunStatus {
            run_id,
            status: Status::Cancelled,
        });
        Ok(())
    }

    /// Puts a leased job back in the queue without counting the attempt toward
    /// [`MAX_ATTEMPTS`] (a runner that stops, e.g. on SIGTERM); the stage keeps its checkpoint,
    /// or takes the one given. The next claim still gets a new attempt number.
    pub async fn release_job(&self, job_id: i64, r: &ReleaseJob) -> Result<(), AppError> {
        let mut tx = self.begin_write().await?;
        let job = self.check_lease(&mut tx, job_id, &r.lease).await?;
        let attempt: i64 = sqlx::query(
            "UPDATE jobs SET status = 'ready', releases = releases + 1, lease = NULL, \
             lease_until_ms = NULL, runner_id = NULL, progress = 0 WHERE id = $1 RETURNING attempt",
        )
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        sqlx::query(
            "UPDATE stages SET checkpoint = COALESCE($1, checkpoint), \
             message = COALESCE($2, message) WHERE id = $3",
        )
        .bind(&r.checkpoint)
        .bind(&r.message)
        .bind(job.stage_id)
        .execute(&mut *tx)
        .await?;
        let status = requeue_stage_in(&mut tx, job.stage_id, self.for_update(false)).await?;
        tx.commit().await?;
        tracing::info!(
            job = job_id,
            run = job.run_id,
            "released by its runner; requeued"
        );
        self.events().publish(Event::StageStatus {
            run_id: job.run_id,
            stage_id: job.stage_id,
            kind: job.kind,
            status,
            attempt,
        });
        Ok(())
    }

    /// The queue state of a job.
    pub async fn job_state(&self, job_id: i64) -> Result<JobState, AppError> {
        let row = sqlx::query("SELECT status, lease_until_ms FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| AppError::NotFound(format!("job {job_id}")))?;
        let status: String = row.try_get(0)?;
        Ok(JobState {
            id: job_id,
            status: job_status(&status),
            lease_until_ms: row.try_get(1)?,
        })
    }
}

/// How a job's queue status reads as a [`Status`].
pub(crate) fn job_status(s: &str) -> Status {
    match s {
        "leased" => Status::Running,
        "blocked" | "ready" => Status::Queued,
        other => Status::parse(other).unwrap_or(Status::Failed),
    }
}

/// The stage of a job that just went back to the queue: it stays running while a sibling shard
/// is leased or finished, and is queued again (with no runner) otherwise. Returns its status.
async fn requeue_stage_in(
    conn: &mut AnyConnection,
    stage_id: i64,
    lock: &str,
) -> Result<Status, AppError> {
    crate::reports::lock_stage_in(conn, stage_id, lock).await?;
    let busy: i64 = sqlx::query(
        "SELECT COUNT(*) FROM jobs WHERE stage_id = $1 AND status IN ('leased', 'done', 'skipped')",
    )
    .bind(stage_id)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    if busy > 0 {
        return Ok(Status::Running);
    }
    sqlx::query("UPDATE stages SET status = 'queued', runner = NULL WHERE id = $1")
        .bind(stage_id)
        .execute(&mut *conn)
        .await?;
    Ok(Status::Queued)
}

/// Marks job `job_id` and its stage failed, and the run failed with its other work cancelled.
pub(crate) async fn fail_run_in(
    conn: &mut AnyConnection,
    run_id: i64,
    job_id: i64,
    message: &str,
    now: i64,
) -> Result<Vec<Event>, AppError> {
    sqlx::query("UPDATE jobs SET status = 'failed', lease = NULL WHERE id = $1")
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE stages SET status = 'failed', message = $1, finished_ms = $2 \
         WHERE id = (SELECT stage_id FROM jobs WHERE id = $3)",
    )
    .bind(message)
    .bind(now)
    .bind(job_id)
    .execute(&mut *conn)
    .await?;
    close_run_in(conn, run_id, Status::Failed, now).await?;
    Ok(vec![Event::RunStatus {
        run_id,
        status: Status::Failed,
    }])
}

/// Cancels every unfinished job and stage of a run and gives the run its final `status`.
async fn close_run_in(
    conn: &mut AnyConnection,
    run_id: i64,
    status: Status,
    now: i64,
) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE jobs SET status = 'cancelled', lease = NULL WHERE run_id = $1 \
         AND status IN ('blocked', 'ready', 'leased')",
    )
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE stages SET status = 'cancelled', finished_ms = $1 WHERE run_id = $2 \
         AND status IN ('queued', 'running')",
    )
    .bind(now)
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE runs SET status = $1, updated_ms = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(now)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Runs [`Store::reap_expired`] every `period` until the process ends.
pub fn spawn_reaper(store: Store, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if let Err(e) = store.reap_expired().await {
                tracing::warn!(error = %e, "lease reaper failed");
            }
        }
    })
}
