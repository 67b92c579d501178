//! The experiment store: one code path over SQLite and PostgreSQL through sqlx `Any`.
//!
//! Architecture invariant: the schema is portable (BIGINT ids, epoch-ms integers for times,
//! JSON as TEXT), because `Any` decodes only booleans, integers, floats, text and blobs.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

use crate::error::AppError;
use crate::events::Events;

mod auth;
mod compare;
mod experiments;
mod results;
mod run_filter;
mod runner_status;
mod runs;

pub use auth::{SecretKind, SecretOwner};
pub(crate) use compare::upsert_query_result;
pub use compare::QueryMetric;
pub use results::ArtifactContent;
pub use run_filter::{RunFilter, RunMetric, RunSort};
pub(crate) use runs::denormalize_eval;

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
    events: Events,
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
        Ok(Store {
            pool,
            backend,
            events: Events::new(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The channel on which writes announce themselves.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite, so that the write lock is taken
    /// up front and a read-then-write can't be overtaken; a plain `BEGIN` on PostgreSQL.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }
}

/// Maps an invalid stored value to an internal error.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("corrupt {what} in database: {detail}"))
}

/// The stage kind in column `index` of `row` (`what` names it in the error if it is unknown).
pub(crate) fn stage_kind_at(
    row: &sqlx::any::AnyRow,
    index: usize,
    what: &str,
) -> Result<distillery_api::StageKind, AppError> {
    use sqlx::Row;
    let kind: String = row.try_get(index)?;
    distillery_api::StageKind::parse(&kind).ok_or_else(|| corrupt(what, &kind))
}

/// Serializes a value stored as JSON text.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, AppError> {
    serde_json::to_string(v).map_err(|e| AppError::Internal(e.to_string()))
}
