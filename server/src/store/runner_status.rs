//! The runners page's view: every runner with the stage it holds a lease on.

use distillery_api::{RunnerJob, RunnerStatus};
use sqlx::Row;

use super::{stage_kind_at, Store};
use crate::error::AppError;

impl Store {
    /// Every runner, by id, with its current job (the most recently claimed of its leased
    /// jobs, if it holds several).
    pub async fn runner_statuses(&self) -> Result<Vec<RunnerStatus>, AppError> {
        let runners = self.list_runners().await?;
        let rows = sqlx::query(
            "SELECT j.runner_id, j.id, j.run_id, r.name, j.kind, s.progress, s.message, j.attempt \
             FROM jobs j JOIN stages s ON s.id = j.stage_id JOIN runs r ON r.id = j.run_id \
             WHERE j.status = 'leased' AND j.runner_id IS NOT NULL ORDER BY j.id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut jobs: Vec<(i64, RunnerJob)> = Vec::with_capacity(rows.len());
        for r in &rows {
            jobs.push((
                r.try_get(0)?,
                RunnerJob {
                    job_id: r.try_get(1)?,
                    run_id: r.try_get(2)?,
                    run_name: r.try_get(3)?,
                    stage: stage_kind_at(r, 4, "job kind")?,
                    progress: r.try_get(5)?,
                    message: r.try_get(6)?,
                    attempt: r.try_get(7)?,
                },
            ));
        }
        Ok(runners
            .into_iter()
            .map(|runner| {
                let current_job = jobs
                    .iter()
                    .rev()
                    .find(|(id, _)| *id == runner.id)
                    .map(|(_, job)| job.clone());
                RunnerStatus {
                    runner,
                    current_job,
                }
            })
            .collect())
    }
}
