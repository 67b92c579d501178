//! Login, logout, users, API tokens and share links.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use distillery_api::{
    Login, NewToken, NewUser, Role, Secret, ShareLink, TokenInfo, User, UserUpdate,
};

use super::{ApiJson, ApiPath};
use crate::auth::{
    cookie_value, hash_password, hash_secret, new_secret, verify_password, Caller, SESSION_COOKIE,
    SESSION_MS,
};
use crate::error::AppError;
use crate::store::{now_ms, SecretKind, SecretOwner};
use crate::AppState;

/// Checks the password and sets a secure, HttpOnly, SameSite=Strict session cookie.
pub async fn auth_login(
    State(state): State<AppState>,
    ApiJson(login): ApiJson<Login>,
) -> Result<Response, AppError> {
    let found = state.store.user_by_name(&login.name).await?;
    let user = match found {
        Some((user, hash)) if verify_password(&login.password, &hash) => user,
        _ => {
            tracing::warn!(name = %login.name, "failed login");
            return Err(AppError::Unauthorized);
        }
    };
    let token = new_secret();
    let owner = SecretOwner::User(user.clone());
    state
        .store
        .insert_secret(
            SecretKind::Session,
            &hash_secret(&token),
            &owner,
            "login",
            Some(now_ms() + SESSION_MS),
        )
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_MS / 1000
    );
    Ok(([(header::SET_COOKIE, cookie)], Json(user)).into_response())
}

/// Forgets the session and clears the cookie.
pub async fn auth_logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if let Some(token) = cookie_value(&headers, SESSION_COOKIE) {
        state.store.delete_secret(&hash_secret(&token)).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response())
}

/// The calling user (a local admin under `--auth none`).
pub async fn auth_me(Extension(caller): Extension<Caller>) -> Result<Json<User>, AppError> {
    match caller {
        Caller::User(u) => Ok(Json(u)),
        Caller::Local => Ok(Json(User::local())),
        Caller::Share { .. } => Err(AppError::Forbidden("a share link has no user".into())),
    }
}

pub async fn users_list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<User>>, AppError> {
    caller.require(Role::Admin)?;
    Ok(Json(state.store.list_users().await?))
}

pub async fn users_create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(new): ApiJson<NewUser>,
) -> Result<Json<User>, AppError> {
    caller.require(Role::Admin)?;
    check_new_user(&new.name, &new.password)?;
    let hash = hash_password(&new.password)?;
    Ok(Json(
        state.store.create_user(&new.name, &hash, new.role).await?,
    ))
}

/// Changes a user's role (admin); the last admin can't be demoted.
pub async fn users_update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(update): ApiJson<UserUpdate>,
) -> Result<Json<User>, AppError> {
    caller.require(Role::Admin)?;
    Ok(Json(state.store.set_user_role(id, update.role).await?))
}

/// The rules for user names and passwords.
pub fn check_new_user(name: &str, password: &str) -> Result<(), AppError> {
    if name.trim().is_empty() || name.len() > 64 {
        return Err(AppError::bad("name", "must be 1 to 64 characters"));
    }
    if password.chars().count() < 8 {
        return Err(AppError::bad("password", "must be at least 8 characters"));
    }
    Ok(())
}

/// Creates a bearer token acting as the calling user.
pub async fn tokens_create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(new): ApiJson<NewToken>,
) -> Result<Json<Secret>, AppError> {
    let user = token_owner(caller)?;
    let token = new_secret();
    let id = state
        .store
        .insert_secret(
            SecretKind::Api,
            &hash_secret(&token),
            &SecretOwner::User(user),
            &new.name,
            None,
        )
        .await?;
    Ok(Json(Secret { id, token }))
}

/// The calling user: tokens belong to users, not to `--auth none` or share links.
fn token_owner(caller: Caller) -> Result<User, AppError> {
    match caller {
        Caller::User(user) => Ok(user),
        _ => Err(AppError::Forbidden(
            "only a logged-in user has API tokens".into(),
        )),
    }
}

/// The calling user's API tokens (names and dates; the secrets are shown only at creation).
pub async fn tokens_list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TokenInfo>>, AppError> {
    let user = token_owner(caller)?;
    Ok(Json(state.store.list_tokens(user.id).await?))
}

/// Revokes one of the calling user's API tokens.
pub async fn tokens_revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, AppError> {
    let user = token_owner(caller)?;
    state.store.revoke_token(user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a read-only link to one run.
pub async fn share_create(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ShareLink>, AppError> {
    state.store.get_run(id).await?;
    let token = new_secret();
    state
        .store
        .insert_secret(
            SecretKind::Share,
            &hash_secret(&token),
            &SecretOwner::Run(id),
            "share",
            None,
        )
        .await?;
    Ok(Json(ShareLink {
        run_id: id,
        url: format!("/share/{id}?share={token}"),
        token,
    }))
}
