//! The team page's endpoints: listing and revoking API tokens, changing roles, share cookies.

use axum::http::StatusCode;
use distillery_api::Role;
use distillery_server::Store;
use serde_json::json;

use super::auth::{add_user, login};
use crate::both_backends;
use crate::common::{send_with, team_router, VALID_CONFIG};

async fn tokens_are_listed_and_revoked_by_their_owner(store: Store) {
    let root = tempfile::tempdir().unwrap();
    let r = team_router(store.clone(), root.path());
    add_user(&store, "vera", Role::Viewer).await;
    add_user(&store, "ed", Role::Editor).await;
    let vera = login(&r, "vera", "password123").await;
    let ed = login(&r, "ed", "password123").await;
    let as_vera = [("cookie", vera.as_str())];

    let mut created = Vec::new();
    for name in ["laptop", "ci"] {
        let body = json!({ "name": name }).to_string();
        let (status, secret, _) =
            send_with(&r, "POST", "/api/v1/tokens", Some(&body), &as_vera).await;
        assert_eq!(status, StatusCode::OK, "{secret}");
        created.push(secret);
    }
    let (status, list, _) = send_with(&r, "GET", "/api/v1/tokens", None, &as_vera).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["laptop", "ci"]);
    assert!(
        list[0].get("token").is_none(),
        "secrets are never listed: {list}"
    );
    assert_eq!(list[0]["id"], created[0]["id"]);

    // Another user sees none of them and can't revoke them.
    let (_, others, _) = send_with(&r, "GET", "/api/v1/tokens", None, &[("cookie", &ed)]).await;
    assert_eq!(others, json!([]));
    let laptop = format!("/api/v1/tokens/{}", created[0]["id"]);
    let (status, body, _) = send_with(&r, "DELETE", &laptop, None, &[("cookie", &ed)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The token works until its owner (a viewer: revoking is self-service) revokes it.
    let bearer = format!("Bearer {}", created[0]["token"].as_str().unwrap());
    let with_token = [("authorization", bearer.as_str())];
    let (status, _, _) = send_with(&r, "GET", "/api/v1/auth/me", None, &with_token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send_with(&r, "DELETE", &laptop, None, &as_vera).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send_with(&r, "GET", "/api/v1/auth/me", None, &with_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send_with(&r, "DELETE", &laptop, None, &as_vera).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list, _) = send_with(&r, "GET", "/api/v1/tokens", None, &as_vera).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, _, _) = send_with(&r, "GET", "/api/v1/tokens", None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
both_backends!(tokens, tokens_are_listed_and_revoked_by_their_owner);

async fn admins_change_roles_but_keep_one_admin(store: Store) {
    let root = tempfile::tempdir().unwrap();
    let r = team_router(store.clone(), root.path());
    add_user(&store, "ada", Role::Admin).await;
    add_user(&store, "vera", Role::Viewer).await;
    let ada = login(&r, "ada", "password123").await;
    let vera = login(&r, "vera", "password123").await;
    let as_ada = [("cookie", ada.as_str())];
    let (_, users, _) = send_with(&r, "GET", "/api/v1/users", None, &as_ada).await;
    let id_of = |name: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .map(|u| u["id"].as_i64().unwrap())
            .unwrap()
    };
    let (ada_id, vera_id) = (id_of("ada"), id_of("vera"));

    // A viewer can't promote herself; the admin can promote her.
    let to_editor = r#"{"role": "editor"}"#;
    let vera_uri = format!("/api/v1/users/{vera_id}");
    let (status, _, _) = send_with(
        &r,
        "PATCH",
        &vera_uri,
        Some(to_editor),
        &[("cookie", &vera)],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, user, _) = send_with(&r, "PATCH", &vera_uri, Some(to_editor), &as_ada).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["role"], "editor");
    // The new role applies to her existing session at once.
    let launch = format!(r#"{{"name": "x", "config": {VALID_CONFIG}}}"#);
    let (status, run, _) = send_with(
        &r,
        "POST",
        "/api/v1/runs",
        Some(&launch),
        &[("cookie", &vera)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");

    // Bad input names the field or the user; the last admin stays an admin.
    let (status, body, _) = send_with(
        &r,
        "PATCH",
        &vera_uri,
        Some(r#"{"role": "owner"}"#),
        &as_ada,
    )
    .await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, body, _) =
        send_with(&r, "PATCH", "/api/v1/users/9999", Some(to_editor), &as_ada).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let ada_uri = format!("/api/v1/users/{ada_id}");
    let (status, body, _) = send_with(&r, "PATCH", &ada_uri, Some(to_editor), &as_ada).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("last admin"));
    // With a second admin, the first may step down.
    let to_admin = r#"{"role": "admin"}"#;
    let (status, _, _) = send_with(&r, "PATCH", &vera_uri, Some(to_admin), &as_ada).await;
    assert_eq!(status, StatusCode::OK);
    let (status, user, _) = send_with(&r, "PATCH", &ada_uri, Some(to_editor), &as_ada).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let (status, _, _) = send_with(&r, "GET", "/api/v1/users", None, &as_ada).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no longer an admin");
}
both_backends!(roles, admins_change_roles_but_keep_one_admin);

/// Two admins demoting each other at the same moment: one of them must stay an admin. Each round
/// adds one admin beside the survivor of the last and runs both demotions concurrently (on
/// PostgreSQL, two connections; without the row locks both could pass the last-admin check).
async fn concurrent_demotions_keep_one_admin(store: Store) {
    add_user(&store, "first", Role::Admin).await;
    for round in 0..12 {
        add_user(&store, &format!("admin-{round}"), Role::Admin).await;
        let admins: Vec<i64> = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.role == Role::Admin)
            .map(|u| u.id)
            .collect();
        assert_eq!(admins.len(), 2, "round {round}");
        let (a, b) = tokio::join!(
            store.set_user_role(admins[0], Role::Editor),
            store.set_user_role(admins[1], Role::Editor)
        );
        assert!(
            a.is_ok() != b.is_ok(),
            "round {round}: exactly one demotion must be refused: {a:?} {b:?}"
        );
        let left = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.role == Role::Admin)
            .count();
        assert_eq!(left, 1, "round {round}");
    }
}
both_backends!(concurrent_demotions, concurrent_demotions_keep_one_admin);

async fn share_cookie_reads_one_run(store: Store) {
    let root = tempfile::tempdir().unwrap();
    let r = team_router(store.clone(), root.path());
    add_user(&store, "ed", Role::Editor).await;
    let ed = login(&r, "ed", "password123").await;
    let launch = format!(r#"{{"name": "x", "config": {VALID_CONFIG}}}"#);
    let (_, run, _) = send_with(
        &r,
        "POST",
        "/api/v1/runs",
        Some(&launch),
        &[("cookie", &ed)],
    )
    .await;
    let run = run["id"].as_i64().unwrap();
    let (_, link, _) = send_with(
        &r,
        "POST",
        &format!("/api/v1/runs/{run}/share"),
        None,
        &[("cookie", &ed)],
    )
    .await;
    let token = link["token"].as_str().unwrap();
    assert_eq!(link["url"], format!("/share/{run}?share={token}"));
    let cookie = format!("distillery_share={token}");
    let as_share = [("cookie", cookie.as_str())];
    let csv = format!("/api/v1/runs/{run}/export/metrics.csv");
    let (status, _, _) = send_with(&r, "GET", &csv, None, &as_share).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send_with(&r, "GET", "/api/v1/runs", None, &as_share).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = send_with(&r, "GET", "/api/v1/auth/me", None, &as_share).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a share link has no user");
    let cancel = format!("/api/v1/runs/{run}/cancel");
    let (status, _, _) = send_with(&r, "POST", &cancel, None, &as_share).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A logged-in user's session wins over a leftover share cookie.
    let both = format!("{ed}; {cookie}");
    let (status, me, _) = send_with(&r, "GET", "/api/v1/auth/me", None, &[("cookie", &both)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "ed");
}
both_backends!(share_cookie, share_cookie_reads_one_run);
