//! Wire types of team access: login, users, API tokens and share links.

use serde::{Deserialize, Serialize};

/// What a user may do. Ordered: each role may do everything the previous one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also launches, cancels and deletes runs, and runs runners.
    Editor,
    /// Also manages users.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "editor" => Role::Editor,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// `POST /api/v1/auth/login`: sets the session cookie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub name: String,
    pub password: String,
}

/// A user, as `GET /api/v1/auth/me` and the user list show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_ms: i64,
}

/// `POST /api/v1/users` (admin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub password: String,
    pub role: Role,
}

/// `POST /api/v1/tokens`: a bearer token acting as the calling user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
}

/// A freshly created secret (API token or share link); shown once, stored only hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    pub id: i64,
    pub token: String,
}

/// `POST /api/v1/runs/{id}/share`: a read-only link to one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareLink {
    pub run_id: i64,
    pub token: String,
    /// Relative URL that opens the run read-only.
    pub url: String,
}

/// An API token as `GET /api/v1/tokens` lists it: never the secret itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub created_ms: i64,
}

/// `PATCH /api/v1/users/{id}` (admin): changes a user's role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub role: Role,
}

impl User {
    /// The caller under `--auth none`: a local admin with id 0 (stored users start at 1).
    pub fn local() -> User {
        User {
            id: 0,
            name: "local".into(),
            role: Role::Admin,
            created_ms: 0,
        }
    }

    /// Whether this is [`User::local`], who has no login, tokens or user list.
    pub fn is_local(&self) -> bool {
        self.id == 0
    }
}
