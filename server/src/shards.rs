//! Shards of teacher scoring: the score file each shard job uploads (`PUT /jobs/{id}/shard`),
//! kept under the artifact root, and served back (`GET /runs/{id}/shards/{kind}/{index}`) to
//! the runner that needs the merged scores. Also the run's job list (`GET /runs/{id}/jobs`).
//!
//! An upload streams into a temp file beside its target and is renamed into place, so a
//! reader never sees half a shard and a retried upload replaces the file with the same bytes.

use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use distillery_api::{RunJob, Shard, ShardStored, StageKind};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::AppError;
use crate::queue::{job_status, LeasedJob};
use crate::store::{corrupt, now_ms, stage_kind_at, Store};

/// The largest shard upload: 16 GiB, far above a split's scores (one short JSON line per pair).
pub const MAX_SHARD_BYTES: i64 = 16 << 30;

/// The artifact kind of an uploaded shard score file.
pub const SHARD_ARTIFACT: &str = "teacher_scores_shard";

/// The folder of a run's shard files, relative to the artifact root.
fn run_shard_dir(run_id: i64) -> String {
    format!("shards/run-{run_id}")
}

/// Where shard `shard` of stage `kind` of run `run_id` lives, relative to the artifact root.
pub fn shard_file(run_id: i64, kind: StageKind, shard: Shard) -> String {
    format!(
        "{}/{}-{}-of-{}.jsonl",
        run_shard_dir(run_id),
        kind.as_str(),
        shard.index,
        shard.count
    )
}

/// The shard of a job row's `shard_index` and `shard_count`: every teacher-scoring job is a
/// shard (1 of 1 when the run is not sharded), so its scores always reach the server and a runner
/// that lacks them downloads them instead of scoring again; other stages have none.
pub(crate) fn shard_of(kind: StageKind, index: i64, count: i64) -> Result<Option<Shard>, AppError> {
    if !kind.is_teacher_scoring() {
        return Ok(None);
    }
    let bad = || corrupt("job shard", format!("{index}/{count}"));
    let count = u32::try_from(count).map_err(|_| bad())?;
    let index = u32::try_from(index)
        .ok()
        .filter(|i| *i < count)
        .ok_or_else(bad)?;
    Ok(Some(Shard { index, count }))
}

impl Store {
    /// The leased shard job `job_id` (checking `lease`); 400 when the job is not a shard.
    pub(crate) async fn leased_shard(
        &self,
        job_id: i64,
        lease: &str,
    ) -> Result<(LeasedJob, Shard), AppError> {
        let mut tx = self.begin_write().await?;
        let job = self.check_lease(&mut tx, job_id, lease).await?;
        tx.rollback().await?;
        let shard = job.shard.ok_or_else(|| {
            AppError::bad(
                "shard",
                "this job is not a shard of a teacher-scoring stage",
            )
        })?;
        Ok((job, shard))
    }

    /// Records an uploaded shard as an artifact of its stage; a repeated upload replaces the
    /// record, so retries leave one.
    pub(crate) async fn record_shard(
        &self,
        job_id: i64,
        lease: &str,
        path: &str,
        staged: &StagedShard,
    ) -> Result<(), AppError> {
        let stored = &staged.stored;
        let mut tx = self.begin_write().await?;
        // The lease is checked, and the job row held, while the file moves into place.
        let job = self.check_lease(&mut tx, job_id, lease).await?;
        staged.commit().await?;
        sqlx::query("DELETE FROM artifacts WHERE stage_id = $1 AND kind = $2 AND path = $3")
            .bind(job.stage_id)
            .bind(SHARD_ARTIFACT)
            .bind(path)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO artifacts (run_id, stage_id, kind, path, content, size_bytes, sha256, \
             created_ms) VALUES ($1, $2, $3, $4, NULL, $5, $6, $7)",
        )
        .bind(job.run_id)
        .bind(job.stage_id)
        .bind(SHARD_ARTIFACT)
        .bind(path)
        .bind(stored.size_bytes)
        .bind(&stored.sha256)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Shard `index` of the run's stage `kind`, once its job is done; 404 when there is no such
    /// shard, 409 while it is not finished.
    pub async fn finished_shard(
        &self,
        run_id: i64,
        kind: StageKind,
        index: i64,
    ) -> Result<Shard, AppError> {
        let row = sqlx::query(
            "SELECT shard_index, shard_count, status FROM jobs \
             WHERE run_id = $1 AND kind = $2 AND shard_index = $3",
        )
        .bind(run_id)
        .bind(kind.as_str())
        .bind(index)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "shard {index} of {} of run {run_id}",
                kind.as_str()
            ))
        })?;
        let shard = shard_of(kind, row.try_get(0)?, row.try_get(1)?)?
            .ok_or_else(|| AppError::NotFound(format!("{} has no shards", kind.as_str())))?;
        let status: String = row.try_get(2)?;
        // `skipped`: a retried shard job found its own earlier output and uploaded it again.
        if status != "done" && status != "skipped" {
            return Err(AppError::Conflict(format!(
                "shard {index} of {} of run {run_id} is {status}, not done",
                kind.as_str()
            )));
        }
        Ok(shard)
    }

    /// Every job of a run, in creation order (shards of a stage by index).
    pub async fn run_jobs(&self, run_id: i64) -> Result<Vec<RunJob>, AppError> {
        self.get_run(run_id).await?;
        let rows = sqlx::query(
            "SELECT id, stage_id, kind, shard_index, shard_count, status, attempt, runner_id \
             FROM jobs WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let kind = stage_kind_at(r, 2, "job kind")?;
                let status: String = r.try_get(5)?;
                Ok(RunJob {
                    id: r.try_get(0)?,
                    stage_id: r.try_get(1)?,
                    kind,
                    shard: shard_of(kind, r.try_get(3)?, r.try_get(4)?)?,
                    status: job_status(&status),
                    attempt: r.try_get(6)?,
                    runner_id: r.try_get(7)?,
                })
            })
            .collect()
    }
}

/// Removes the uploaded shards of a deleted run; a failure is logged, the run is gone anyway.
pub async fn remove_run_shards(root: &Path, run_id: i64) {
    let dir = root.join(run_shard_dir(run_id));
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => tracing::info!(run = run_id, "removed the run's shard files"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(run = run_id, dir = %dir.display(), "removing shard files: {e}"),
    }
}

/// Streams `body` into a temp file beside `root/relative`, computing its size and SHA-256; the
/// caller moves it into place with [`Store::record_shard`].
pub async fn stage_shard_body(
    root: &Path,
    relative: &str,
    body: Body,
) -> Result<StagedShard, AppError> {
    let target = root.join(relative);
    let dir = target
        .parent()
        .ok_or_else(|| AppError::Internal(format!("shard path {relative} has no directory")))?;
    let io = |what: &str, e: std::io::Error| AppError::Internal(format!("{what}: {e}"));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io(&dir.display().to_string(), e))?;
    let tmp = temp_beside(&target);
    match write_stream(&tmp, body).await {
        Ok(stored) => Ok(StagedShard {
            tmp,
            target,
            stored,
        }),
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

/// An uploaded shard written beside its final place, not yet in it: [`Store::record_shard`]
/// moves it there only while the upload's lease still holds, so an upload that outlived its
/// lease never replaces the file a later holder of the job stored.
pub struct StagedShard {
    tmp: PathBuf,
    target: PathBuf,
    pub stored: ShardStored,
}

impl StagedShard {
    /// Moves the file to its final place.
    async fn commit(&self) -> Result<(), AppError> {
        tokio::fs::rename(&self.tmp, &self.target)
            .await
            .map_err(|e| AppError::Internal(format!("{}: {e}", self.target.display())))
    }

    /// Removes the staged file (the upload was refused).
    pub async fn discard(&self) {
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

fn temp_beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.tmp", crate::auth::new_secret()))
}

async fn write_stream(tmp: &Path, body: Body) -> Result<ShardStored, AppError> {
    let io = |e: std::io::Error| AppError::Internal(format!("{}: {e}", tmp.display()));
    let mut file = tokio::fs::File::create(tmp).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut size = 0i64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::bad("body", format!("upload broke off: {e}")))?;
        hasher.update(&chunk);
        size += chunk.len() as i64;
        if size > MAX_SHARD_BYTES {
            return Err(AppError::bad(
                "body",
                format!("a shard's scores may take at most {MAX_SHARD_BYTES} bytes"),
            ));
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.sync_all().await.map_err(io)?;
    Ok(ShardStored {
        size_bytes: size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// The file at `path` as a streamed body, 64 KiB at a time.
pub async fn file_body(path: &Path) -> Result<Body, AppError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|_| AppError::NotFound(format!("shard file {}", path.display())))?;
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(Body::from_stream(stream))
}
