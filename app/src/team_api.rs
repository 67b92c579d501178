//! Fetchers for the team page: login, logout, API tokens, users and share links.

use distillery_api::{
    Login, NewToken, NewUser, Role, Secret, ShareLink, TokenInfo, User, UserUpdate,
};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{read_json, FetchError};

fn network(e: gloo_net::Error) -> FetchError {
    FetchError(format!("network error: {e}"))
}

async fn send(request: Request) -> Result<Response, FetchError> {
    request.send().await.map_err(network)
}

/// Sends `body` as JSON with `builder`'s method and reads a JSON answer.
async fn send_json<B: Serialize, T: DeserializeOwned>(
    builder: RequestBuilder,
    body: &B,
) -> Result<T, FetchError> {
    read_json(send(builder.json(body).map_err(network)?).await?).await
}

/// Reads an answer with no body (204), or the error of a failed one.
async fn read_empty(resp: Response) -> Result<(), FetchError> {
    if resp.ok() {
        Ok(())
    } else {
        read_json::<serde_json::Value>(resp).await.map(|_| ())
    }
}

/// Logs in; the server sets the session cookie. A wrong password is an error, not a redirect.
pub async fn login(name: String, password: String) -> Result<User, FetchError> {
    let request = Request::post("/api/v1/auth/login")
        .json(&Login { name, password })
        .map_err(network)?;
    let resp = send(request).await?;
    if resp.status() == 401 {
        return Err(FetchError("wrong user name or password".into()));
    }
    read_json(resp).await
}

pub async fn logout() -> Result<(), FetchError> {
    read_empty(
        send(
            Request::post("/api/v1/auth/logout")
                .build()
                .map_err(network)?,
        )
        .await?,
    )
    .await
}

pub async fn fetch_tokens() -> Result<Vec<TokenInfo>, FetchError> {
    read_json(send(Request::get("/api/v1/tokens").build().map_err(network)?).await?).await
}

/// Creates an API token; its secret is in the answer and nowhere else, ever.
pub async fn create_token(name: String) -> Result<Secret, FetchError> {
    send_json(Request::post("/api/v1/tokens"), &NewToken { name }).await
}

pub async fn revoke_token(id: i64) -> Result<(), FetchError> {
    let url = format!("/api/v1/tokens/{id}");
    read_empty(send(Request::delete(&url).build().map_err(network)?).await?).await
}

pub async fn fetch_users() -> Result<Vec<User>, FetchError> {
    read_json(send(Request::get("/api/v1/users").build().map_err(network)?).await?).await
}

pub async fn create_user(new: NewUser) -> Result<User, FetchError> {
    send_json(Request::post("/api/v1/users"), &new).await
}

pub async fn set_role(id: i64, role: Role) -> Result<User, FetchError> {
    send_json(
        Request::patch(&format!("/api/v1/users/{id}")),
        &UserUpdate { role },
    )
    .await
}

pub async fn create_share_link(run_id: i64) -> Result<ShareLink, FetchError> {
    let url = format!("/api/v1/runs/{run_id}/share");
    read_json(send(Request::post(&url).build().map_err(network)?).await?).await
}
