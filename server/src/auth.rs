//! Team access: who is calling, and what they may do.
//!
//! With `--auth none` (allowed only on a loopback address) every caller is a local admin.
//! With `--auth team` a caller is a browser session (cookie), a bearer token (runners and
//! scripts) or a share link (read-only, one run); anyone else gets 401. [`authorize`] is one
//! middleware in front of every API route, so no write endpoint can be forgotten: reads need
//! any role, writes need `editor`, and the few admin endpoints check [`Caller::require`].

use std::net::SocketAddr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use distillery_api::{Role, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::store::{SecretKind, SecretOwner};
use crate::AppState;

/// The name of the browser session cookie.
pub const SESSION_COOKIE: &str = "distillery_session";
/// The cookie the dashboard sets to carry a share-link token.
pub const SHARE_COOKIE: &str = "distillery_share";
/// The header that carries a share-link token (the `share` query parameter also works).
pub const SHARE_HEADER: &str = "x-distillery-share";
/// How long a login lasts.
pub const SESSION_MS: i64 = 7 * 24 * 3600 * 1000;

/// How the server authenticates callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Everyone is an admin; only allowed when bound to loopback.
    None,
    /// Login, bearer tokens and share links.
    Team,
}

impl AuthMode {
    /// Refuses `none` on an address reachable from other machines.
    pub fn check_bind(self, bind: SocketAddr) -> Result<(), String> {
        if self == AuthMode::None && !bind.ip().is_loopback() {
            return Err(format!(
                "--auth none is only allowed on a loopback address, not {bind}; use --auth team"
            ));
        }
        Ok(())
    }
}

/// Who is making a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// `--auth none`: a local admin.
    Local,
    User(User),
    /// A share link: may read run `run_id` only.
    Share {
        run_id: i64,
    },
}

impl Caller {
    pub fn role(&self) -> Option<Role> {
        match self {
            Caller::Local => Some(Role::Admin),
            Caller::User(u) => Some(u.role),
            Caller::Share { .. } => None,
        }
    }

    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        match self.role() {
            Some(r) if r >= role => Ok(()),
            _ => Err(AppError::Forbidden(format!(
                "requires the {} role",
                role.as_str()
            ))),
        }
    }
}

/// A fresh random secret: 32 bytes, hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// How secrets are stored: hex SHA-256 (they are random, so no salt is needed).
pub fn hash_secret(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An argon2id hash of a password, in PHC string format.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes)
        .map_err(|e| AppError::Internal(format!("encoding a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches a stored hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The value of the cookie `name` in a request's `Cookie` headers, if any.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name && !v.is_empty()).then(|| v.to_string())
        })
}

/// The token of the session cookie, if any.
fn session_token(req: &Request) -> Option<String> {
    cookie_value(req.headers(), SESSION_COOKIE)
}

fn bearer_token(req: &Request) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// A share-link token from the header, the `share` query parameter or the share cookie (which
/// the dashboard sets when it opens a share link, so its downloads and event streams carry it).
fn share_token(req: &Request) -> Option<String> {
    if let Some(v) = req
        .headers()
        .get(SHARE_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return Some(v.to_string());
    }
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("share=").map(str::to_string))
    });
    from_query.or_else(|| cookie_value(req.headers(), SHARE_COOKIE))
}

/// The secrets a request presents, strongest first.
fn presented_secrets(req: &Request) -> [(SecretKind, Option<String>); 3] {
    [
        (SecretKind::Api, bearer_token(req)),
        (SecretKind::Session, session_token(req)),
        (SecretKind::Share, share_token(req)),
    ]
}

/// Resolves the caller of a request in team mode.
async fn identify(
    state: &AppState,
    candidates: [(SecretKind, Option<String>); 3],
) -> Result<Option<Caller>, AppError> {
    let store = &state.store;
    for (kind, token) in candidates {
        let Some(token) = token else { continue };
        match store.secret_owner(kind, &hash_secret(&token)).await? {
            Some(SecretOwner::User(u)) => return Ok(Some(Caller::User(u))),
            Some(SecretOwner::Run(run_id)) => return Ok(Some(Caller::Share { run_id })),
            None => {}
        }
    }
    Ok(None)
}

/// Requests any authenticated caller may make whatever their role: managing their own login
/// and tokens.
fn is_self_service(method: &Method, path: &str) -> bool {
    (*method == Method::POST && (path == "/auth/logout" || path == "/tokens"))
        || (*method == Method::DELETE && path.starts_with("/tokens/"))
}

/// Whether a share link for `run_id` may make this request: reads of that run only.
fn share_allows(run_id: i64, method: &Method, path: &str) -> bool {
    if *method != Method::GET {
        return false;
    }
    let prefix = format!("/runs/{run_id}");
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

/// The middleware in front of every API route except login and health.
pub async fn authorize(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let mode = req
        .extensions()
        .get::<crate::Settings>()
        .map(|s| s.auth)
        .ok_or_else(|| AppError::Internal("settings missing".into()))?;
    let caller = match mode {
        AuthMode::None => Caller::Local,
        AuthMode::Team => identify(&state, presented_secrets(&req))
            .await?
            .ok_or(AppError::Unauthorized)?,
    };
    let path = req
        .uri()
        .path()
        .trim_start_matches(distillery_api::API_PREFIX)
        .to_string();
    let method = req.method().clone();
    let allowed = match &caller {
        Caller::Share { run_id } => share_allows(*run_id, &method, &path),
        Caller::Local => true,
        Caller::User(u) => {
            method == Method::GET
                || method == Method::HEAD
                || is_self_service(&method, &path)
                || u.role >= Role::Editor
        }
    };
    if !allowed {
        return Err(AppError::Forbidden(format!(
            "{method} {path} is not allowed for this caller"
        )));
    }
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_none_needs_loopback() {
        assert!(AuthMode::None
            .check_bind("127.0.0.1:8480".parse().unwrap())
            .is_ok());
        assert!(AuthMode::None
            .check_bind("[::1]:8480".parse().unwrap())
            .is_ok());
        assert!(AuthMode::None
            .check_bind("0.0.0.0:8480".parse().unwrap())
            .is_err());
        assert!(AuthMode::Team
            .check_bind("0.0.0.0:8480".parse().unwrap())
            .is_ok());
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn share_links_read_one_run() {
        assert!(share_allows(7, &Method::GET, "/runs/7"));
        assert!(share_allows(7, &Method::GET, "/runs/7/series"));
        assert!(!share_allows(7, &Method::GET, "/runs/70"));
        assert!(!share_allows(7, &Method::GET, "/runs"));
        assert!(!share_allows(7, &Method::DELETE, "/runs/7"));
    }
}
