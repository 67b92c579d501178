//! The experiment store: one code path over SQLite and PostgreSQL through sqlx `Any`.
//!
//! Architecture invariant: the schema is portable (BIGINT ids, epoch-ms integers for times,
//! JSON as TEXT), because `Any` decodes only booleans, integers, floats, text and blobs.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use distillery_api::{Experiment, NewExperiment, NewRun, Run, RunConfig, Stage, StageKind, Status};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::error::AppError;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database engine a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects to `sqlite://…`, `sqlite::memory:` or `postgres://…` and runs the migrations.
    /// A SQLite file is created on first start.
    pub async fn connect(url: &str) -> Result<Store, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(sqlx::Error::Configuration(
                format!("unsupported database URL {url:?}: use sqlite://PATH or postgres://…")
                    .into(),
            ));
        };
        let pool = match backend {
            Backend::Sqlite if url.contains(":memory:") => {
                // An in-memory database lives in one connection: pin it.
                AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect(url)
                    .await?
            }
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                let opts = AnyConnectOptions::from_str(&url)?;
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA foreign_keys = ON")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA journal_mode = WAL")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA busy_timeout = 10000")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .connect(url)
                    .await?
            }
        };
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn create_experiment(&self, new: &NewExperiment) -> Result<Experiment, AppError> {
        let created_ms = now_ms();
        let row = sqlx::query(
            "INSERT INTO experiments (name, description, created_ms) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(&new.name)
        .bind(&new.description)
        .bind(created_ms)
        .fetch_one(&self.pool)
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
        .fetch_all(&self.pool)
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

    /// Records a run and expands it into one queued stage per [`StageKind`].
    pub async fn create_run(&self, new: &NewRun) -> Result<Run, AppError> {
        let now = now_ms();
        let config =
            serde_json::to_string(&new.config).map_err(|e| AppError::Internal(e.to_string()))?;
        let tags =
            serde_json::to_string(&new.tags).map_err(|e| AppError::Internal(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO runs (experiment_id, name, status, config, tags, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(new.experiment_id)
        .bind(&new.name)
        .bind(Status::Queued.as_str())
        .bind(&config)
        .bind(&tags)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        for kind in StageKind::ALL {
            sqlx::query("INSERT INTO stages (run_id, kind, status) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(kind.as_str())
                .bind(Status::Queued.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Run {
            id,
            experiment_id: new.experiment_id,
            name: new.name.clone(),
            status: Status::Queued,
            config: new.config.clone(),
            tags: new.tags.clone(),
            created_ms: now,
            updated_ms: now,
        })
    }

    pub async fn get_run(&self, id: i64) -> Result<Run, AppError> {
        let row = sqlx::query(AssertSqlSafe(format!("{RUN_COLUMNS} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("run {id}")))?;
        run_from_row(&row)
    }

    /// Newest first, `limit` rows from `offset`, plus the total count.
    pub async fn list_runs(&self, limit: i64, offset: i64) -> Result<(Vec<Run>, i64), AppError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{RUN_COLUMNS} ORDER BY id DESC LIMIT $1 OFFSET $2"
        )))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query("SELECT COUNT(*) FROM runs")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let runs = rows.iter().map(run_from_row).collect::<Result<_, _>>()?;
        Ok((runs, total))
    }

    pub async fn list_stages(&self, run_id: i64) -> Result<Vec<Stage>, AppError> {
        let rows = sqlx::query(
            "SELECT id, run_id, kind, status, progress, attempt, runner, message, started_ms, finished_ms \
             FROM stages WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stage_from_row).collect()
    }
}

const RUN_COLUMNS: &str =
    "SELECT id, experiment_id, name, status, config, tags, created_ms, updated_ms FROM runs";

fn corrupt(what: &str, detail: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("corrupt {what} in database: {detail}"))
}

fn run_from_row(r: &AnyRow) -> Result<Run, AppError> {
    let status: String = r.try_get(3)?;
    let config: String = r.try_get(4)?;
    let tags: String = r.try_get(5)?;
    Ok(Run {
        id: r.try_get(0)?,
        experiment_id: r.try_get(1)?,
        name: r.try_get(2)?,
        status: Status::parse(&status).ok_or_else(|| corrupt("run status", &status))?,
        config: serde_json::from_str::<RunConfig>(&config).map_err(|e| corrupt("run config", e))?,
        tags: serde_json::from_str(&tags).map_err(|e| corrupt("run tags", e))?,
        created_ms: r.try_get(6)?,
        updated_ms: r.try_get(7)?,
    })
}

fn stage_from_row(r: &AnyRow) -> Result<Stage, AppError> {
    let kind: String = r.try_get(2)?;
    let status: String = r.try_get(3)?;
    Ok(Stage {
        id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        kind: StageKind::parse(&kind).ok_or_else(|| corrupt("stage kind", &kind))?,
        status: Status::parse(&status).ok_or_else(|| corrupt("stage status", &status))?,
        progress: r.try_get(4)?,
        attempt: r.try_get(5)?,
        runner: r.try_get(6)?,
        message: r.try_get(7)?,
        started_ms: r.try_get(8)?,
        finished_ms: r.try_get(9)?,
    })
}
