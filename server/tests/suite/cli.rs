//! The `distillery-server` binary: `create-admin`, and `--auth none` refused off loopback.

use std::io::Write;
use std::process::{Command, Stdio};

use axum::http::StatusCode;
use distillery_server::Store;

use crate::common::{send_with, team_router};

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_distillery-server"))
}

#[tokio::test]
async fn create_admin_then_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("d.db").display());
    let mut child = server()
        .args([
            "create-admin",
            "--name",
            "root",
            "--database-url",
            &url,
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"long enough secret\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin root"));

    let store = Store::connect(&url).await.unwrap();
    let r = team_router(store, dir.path());
    let body = r#"{"name": "root", "password": "long enough secret"}"#;
    let (status, user, _) = send_with(&r, "POST", "/api/v1/auth/login", Some(body), &[]).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["role"], "admin");

    let out = server()
        .args(["create-admin", "--name", "root2", "--database-url", &url])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "an empty password is refused");
}

#[test]
fn auth_none_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = server()
        .args(["--bind", "0.0.0.0:0", "--auth", "none", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
}
