//! Users and secrets (session cookies, API tokens, share links), stored hashed.

use distillery_api::{Role, TokenInfo, User};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{corrupt, now_ms, Store};
use crate::error::AppError;

/// What a secret grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A browser session cookie.
    Session,
    /// A bearer token for runners and scripts.
    Api,
    /// A read-only link to one run.
    Share,
}

impl SecretKind {
    fn as_str(self) -> &'static str {
        match self {
            SecretKind::Session => "session",
            SecretKind::Api => "api",
            SecretKind::Share => "share",
        }
    }
}

/// Whom a valid secret stands for.
#[derive(Debug, Clone)]
pub enum SecretOwner {
    User(User),
    Run(i64),
}

impl Store {
    /// Creates a user with an already hashed password.
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<User, AppError> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO users (name, password_hash, role, created_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| AppError::Conflict(format!("user {name:?} already exists")))?;
        Ok(User {
            id: row.try_get(0)?,
            name: name.into(),
            role,
            created_ms: now,
        })
    }

    /// A user and their password hash, by name.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<(User, String)>, AppError> {
        let row = sqlx::query(
            "SELECT id, name, role, created_ms, password_hash FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get(4)?)))
            .transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>, AppError> {
        let rows = sqlx::query("SELECT id, name, role, created_ms FROM users ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Stores the hash of a new secret for a user or a run.
    pub async fn insert_secret(
        &self,
        kind: SecretKind,
        token_hash: &str,
        owner: &SecretOwner,
        name: &str,
        expires_ms: Option<i64>,
    ) -> Result<i64, AppError> {
        let (user_id, run_id) = match owner {
            SecretOwner::User(u) => (Some(u.id), None),
            SecretOwner::Run(r) => (None, Some(*r)),
        };
        Ok(sqlx::query(
            "INSERT INTO secrets (kind, token_hash, user_id, run_id, name, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(token_hash)
        .bind(user_id)
        .bind(run_id)
        .bind(name)
        .bind(now_ms())
        .bind(expires_ms)
        .fetch_one(self.pool())
        .await?
        .try_get(0)?)
    }

    /// The owner of an unexpired secret of this kind, if any.
    pub async fn secret_owner(
        &self,
        kind: SecretKind,
        token_hash: &str,
    ) -> Result<Option<SecretOwner>, AppError> {
        let row = sqlx::query(
            "SELECT s.run_id, u.id, u.name, u.role, u.created_ms FROM secrets s \
             LEFT JOIN users u ON u.id = s.user_id \
             WHERE s.kind = $1 AND s.token_hash = $2 AND (s.expires_ms IS NULL OR s.expires_ms > $3)",
        )
        .bind(kind.as_str())
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let run_id: Option<i64> = r.try_get(0)?;
        if let Some(run_id) = run_id {
            return Ok(Some(SecretOwner::Run(run_id)));
        }
        let id: Option<i64> = r.try_get(1)?;
        if id.is_none() {
            return Ok(None);
        }
        let role: String = r.try_get(3)?;
        Ok(Some(SecretOwner::User(User {
            id: r.try_get(1)?,
            name: r.try_get(2)?,
            role: Role::parse(&role).ok_or_else(|| corrupt("user role", &role))?,
            created_ms: r.try_get(4)?,
        })))
    }

    /// Changes a user's role; refuses to demote the last admin (409).
    pub async fn set_user_role(&self, id: i64, role: Role) -> Result<User, AppError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT id, name, role, created_ms FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("user {id}")))?;
        let mut user = user_from_row(&row)?;
        if user.role == Role::Admin && role != Role::Admin {
            // Lock the admins' rows (PostgreSQL; SQLite's write transaction already excludes
            // other writers): two admins demoting each other at once are serialized, and the
            // second sees the first's change, so one admin always stays.
            let sql = format!(
                "SELECT id FROM users WHERE role = $1 ORDER BY id{}",
                self.for_update(false)
            );
            let admins = sqlx::query(AssertSqlSafe(sql))
                .bind(Role::Admin.as_str())
                .fetch_all(&mut *tx)
                .await?
                .len();
            if admins <= 1 {
                return Err(AppError::Conflict(format!(
                    "{} is the last admin; make another admin first",
                    user.name
                )));
            }
        }
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        user.role = role;
        Ok(user)
    }

    /// A user's API tokens, oldest first (names and dates only; secrets are never readable).
    pub async fn list_tokens(&self, user_id: i64) -> Result<Vec<TokenInfo>, AppError> {
        let rows = sqlx::query(
            "SELECT id, name, created_ms FROM secrets WHERE kind = $1 AND user_id = $2 ORDER BY id",
        )
        .bind(SecretKind::Api.as_str())
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    created_ms: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Revokes one of a user's API tokens; 404 when the user has no such token.
    pub async fn revoke_token(&self, user_id: i64, id: i64) -> Result<(), AppError> {
        let done = sqlx::query("DELETE FROM secrets WHERE id = $1 AND kind = $2 AND user_id = $3")
            .bind(id)
            .bind(SecretKind::Api.as_str())
            .bind(user_id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(AppError::NotFound(format!("token {id}")));
        }
        Ok(())
    }

    /// Forgets a secret (logout).
    pub async fn delete_secret(&self, token_hash: &str) -> Result<(), AppError> {
        sqlx::query("DELETE FROM secrets WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

fn user_from_row(r: &AnyRow) -> Result<User, AppError> {
    let role: String = r.try_get(2)?;
    Ok(User {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        role: Role::parse(&role).ok_or_else(|| corrupt("user role", &role))?,
        created_ms: r.try_get(3)?,
    })
}
