//! Team access: the 401/403 matrix per role, share links, tokens, and artifact confinement.

use axum::http::StatusCode;
use axum::Router;
use distillery_api::Role;
use distillery_server::auth::hash_password;
use distillery_server::Store;
use serde_json::json;

use crate::both_backends;
use crate::common::{send_with, team_router, VALID_CONFIG};

/// Logs in and returns the `Cookie` header value.
pub(crate) async fn login(r: &Router, name: &str, password: &str) -> String {
    let body = json!({"name": name, "password": password}).to_string();
    let (status, user, headers) =
        send_with(r, "POST", "/api/v1/auth/login", Some(&body), &[]).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let cookie = headers["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    cookie.split(';').next().unwrap().to_string()
}

pub(crate) async fn add_user(store: &Store, name: &str, role: Role) {
    let hash = hash_password("password123").unwrap();
    store.create_user(name, &hash, role).await.unwrap();
}

async fn every_endpoint_checks_its_caller(store: Store) {
    let root = tempfile::tempdir().unwrap();
    let r = team_router(store.clone(), root.path());
    for (name, role) in [
        ("vera", Role::Viewer),
        ("ed", Role::Editor),
        ("ada", Role::Admin),
    ] {
        add_user(&store, name, role).await;
    }
    let viewer = login(&r, "vera", "password123").await;
    let editor = login(&r, "ed", "password123").await;
    let admin = login(&r, "ada", "password123").await;
    let (status, _, _) = send_with(
        &r,
        "POST",
        "/api/v1/auth/login",
        Some(r#"{"name": "ed", "password": "wrong-password"}"#),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let cookie = |c: &str| vec![("cookie", c.to_string())];
    let launch_body = format!(r#"{{"name": "x", "config": {VALID_CONFIG}}}"#);
    let (status, run, _) = send_with(
        &r,
        "POST",
        "/api/v1/runs",
        Some(&launch_body),
        &[("cookie", &editor)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let run = run["id"].as_i64().unwrap();
    let (status, other, _) = send_with(
        &r,
        "POST",
        "/api/v1/runs",
        Some(&launch_body),
        &[("cookie", &editor)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let other = other["id"].as_i64().unwrap();

    // A bearer token acts as its user; a share link reads one run.
    let (status, token, _) = send_with(
        &r,
        "POST",
        "/api/v1/tokens",
        Some(r#"{"name": "runner"}"#),
        &[("cookie", &viewer)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let (status, share, _) = send_with(
        &r,
        "POST",
        &format!("/api/v1/runs/{run}/share"),
        None,
        &[("cookie", &editor)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{share}");
    let share = share["token"].as_str().unwrap().to_string();

    let callers: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("anonymous", vec![]),
        ("viewer", cookie(&viewer)),
        ("viewer token", vec![("authorization", bearer.clone())]),
        ("editor", cookie(&editor)),
        ("admin", cookie(&admin)),
        ("share", vec![("x-distillery-share", share.clone())]),
        ("bad token", vec![("authorization", "Bearer nope".into())]),
    ];
    let runner_body = r#"{"name": "gpu"}"#;
    let user_body = r#"{"name": "new", "password": "password123", "role": "viewer"}"#;
    // (method, uri, body, expected status per caller in the order above)
    let u = StatusCode::UNAUTHORIZED;
    let f = StatusCode::FORBIDDEN;
    let ok = StatusCode::OK;
    let matrix: Vec<(&str, String, Option<&str>, [StatusCode; 7])> = vec![
        (
            "GET",
            "/api/v1/runs".into(),
            None,
            [u, ok, ok, ok, ok, f, u],
        ),
        (
            "GET",
            format!("/api/v1/runs/{run}"),
            None,
            [u, ok, ok, ok, ok, ok, u],
        ),
        (
            "GET",
            format!("/api/v1/runs/{run}/stages"),
            None,
            [u, ok, ok, ok, ok, ok, u],
        ),
        (
            "GET",
            format!("/api/v1/runs/{other}"),
            None,
            [u, ok, ok, ok, ok, f, u],
        ),
        (
            "POST",
            "/api/v1/runs".into(),
            Some(&launch_body),
            [u, f, f, ok, ok, f, u],
        ),
        (
            "POST",
            "/api/v1/runners".into(),
            Some(runner_body),
            [u, f, f, ok, ok, f, u],
        ),
        (
            "POST",
            format!("/api/v1/runs/{other}/share"),
            None,
            [u, f, f, ok, ok, f, u],
        ),
        ("GET", "/api/v1/users".into(), None, [u, f, f, f, ok, f, u]),
        (
            "POST",
            "/api/v1/users".into(),
            Some(user_body),
            [u, f, f, f, ok, f, u],
        ),
        (
            "GET",
            "/api/v1/auth/me".into(),
            None,
            [u, ok, ok, ok, ok, f, u],
        ),
        (
            "GET",
            "/api/v1/export/runs.csv".into(),
            None,
            [u, ok, ok, ok, ok, f, u],
        ),
        (
            "DELETE",
            format!("/api/v1/runs/{other}"),
            None,
            [u, f, f, ok, ok, f, u],
        ),
    ];
    for (method, uri, body, expected) in &matrix {
        for ((who, headers), want) in callers.iter().zip(expected) {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, json, _) = send_with(&r, method, uri, *body, &headers).await;
            if *want == StatusCode::OK && *method == "DELETE" && status == StatusCode::NOT_FOUND {
                continue; // Already deleted by an earlier caller of this row.
            }
            if *want == StatusCode::OK && uri.ends_with("/users") && *method == "POST" {
                assert!(
                    status == StatusCode::OK || status == StatusCode::CONFLICT,
                    "{who} {method} {uri}: {status}"
                );
                continue;
            }
            assert_eq!(status, *want, "{who} {method} {uri}: {json}");
            if status != StatusCode::OK {
                assert!(
                    json["error"].is_string(),
                    "{who} {method} {uri}: JSON error body"
                );
            }
        }
    }
    // The share query parameter works as well as the header, and health needs no login.
    let (status, _, _) = send_with(
        &r,
        "GET",
        &format!("/api/v1/runs/{run}?share={share}"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send_with(&r, "GET", "/api/v1/health", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    // Logging out ends the session.
    let (status, _, _) = send_with(
        &r,
        "POST",
        "/api/v1/auth/logout",
        None,
        &[("cookie", &viewer)],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send_with(&r, "GET", "/api/v1/runs", None, &[("cookie", &viewer)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
both_backends!(auth_matrix, every_endpoint_checks_its_caller);

async fn artifact_paths_stay_in_the_root(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("artifacts");
    std::fs::create_dir_all(root.join("run1")).unwrap();
    std::fs::write(root.join("run1/scores.jsonl"), b"{\"score\": 1}\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"top secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("run1/link")).unwrap();
    let r = team_router(store.clone(), &root);
    add_user(&store, "ed", Role::Editor).await;
    let editor = login(&r, "ed", "password123").await;
    let h = [("cookie", editor.as_str())];
    let launch_body = format!(r#"{{"name": "x", "config": {VALID_CONFIG}}}"#);
    let (_, run, _) = send_with(&r, "POST", "/api/v1/runs", Some(&launch_body), &h).await;
    let run = run["id"].as_i64().unwrap();
    let (_, runner, _) = send_with(
        &r,
        "POST",
        "/api/v1/runners",
        Some(r#"{"name": "gpu"}"#),
        &h,
    )
    .await;
    let (_, job, _) = send_with(
        &r,
        "POST",
        &format!("/api/v1/runners/{}/claim", runner["id"]),
        Some("{}"),
        &h,
    )
    .await;
    let sha = "0".repeat(64);
    let artifact = |path: &str| {
        json!({"lease": job["lease"], "kind": "scores", "path": path, "size_bytes": 13, "sha256": sha}).to_string()
    };
    let uri = format!("/api/v1/jobs/{}/artifacts", job["id"]);
    for bad in ["../secret.txt", "/etc/passwd", "run1/../../secret.txt"] {
        let (status, body, _) = send_with(&r, "POST", &uri, Some(&artifact(bad)), &h).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["field"], "path");
    }
    let (status, good, _) =
        send_with(&r, "POST", &uri, Some(&artifact("run1/scores.jsonl")), &h).await;
    assert_eq!(status, StatusCode::OK, "{good}");
    let (status, body, _) = send_with(
        &r,
        "GET",
        &format!("/api/v1/runs/{run}/artifacts/{}", good["id"]),
        None,
        &h,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["score"], 1);
    // Rows that escape the root (written behind the API's back, or through a symlink) are
    // refused at download time.
    for (i, path) in ["../secret.txt", "run1/link"].iter().enumerate() {
        sqlx::query(
            "INSERT INTO artifacts (run_id, stage_id, kind, path, size_bytes, sha256, created_ms) \
             SELECT run_id, stage_id, 'x', $1, 1, $2, 0 FROM jobs WHERE id = $3",
        )
        .bind(*path)
        .bind(&sha)
        .bind(job["id"].as_i64().unwrap())
        .execute(store.pool())
        .await
        .unwrap();
        let id = good["id"].as_i64().unwrap() + 1 + i as i64;
        let (status, body, _) = send_with(
            &r,
            "GET",
            &format!("/api/v1/runs/{run}/artifacts/{id}"),
            None,
            &h,
        )
        .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN,
            "{path}: {status} {body}"
        );
        assert!(body["error"].is_string());
    }
    let (status, list, _) = send_with(
        &r,
        "GET",
        &format!("/api/v1/runs/{run}/artifacts"),
        None,
        &h,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 3);
}
both_backends!(artifact_confinement, artifact_paths_stay_in_the_root);
