//! Experiments: named groups of runs.

use distillery_api::{Experiment, NewExperiment};
use sqlx::Row;

use super::{now_ms, Store};
use crate::error::AppError;

impl Store {
    pub async fn create_experiment(&self, new: &NewExperiment) -> Result<Experiment, AppError> {
        let created_ms = now_ms();
        let row = sqlx::query(
            "INSERT INTO experiments (name, description, created_ms) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(&new.name)
        .bind(&new.description)
        .bind(created_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(Experiment {
            id: row.try_get(0)?,
            name: new.name.clone(),
            description: new.description.clone(),
            created_ms,
        })
    }

    pub async fn list_experiments(&self) -> Result<Vec<Experiment>, AppError> {
        let rows = sqlx::query(
            "SELECT id, name, description, created_ms FROM experiments ORDER BY id DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Experiment {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    description: r.try_get(2)?,
                    created_ms: r.try_get(3)?,
                })
            })
            .collect()
    }

    pub async fn get_experiment(&self, id: i64) -> Result<Experiment, AppError> {
        let r =
            sqlx::query("SELECT id, name, description, created_ms FROM experiments WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| AppError::NotFound(format!("experiment {id}")))?;
        Ok(Experiment {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            description: r.try_get(2)?,
            created_ms: r.try_get(3)?,
        })
    }

    /// Deletes an experiment; its runs are kept, detached.
    pub async fn delete_experiment(&self, id: i64) -> Result<(), AppError> {
        let done = sqlx::query("DELETE FROM experiments WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(AppError::NotFound(format!("experiment {id}")));
        }
        Ok(())
    }
}
