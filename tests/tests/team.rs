//! Browser tests of team access (`--auth team`): login and the 401 redirect, tokens, users,
//! what a viewer is not shown, and a share link opened logged out.

use std::time::Duration;

use distillery_api::Role;
use distillery_e2e::fixtures::{seed_results, seeded_store};
use distillery_e2e::page::{
    current_path, download_link, fetch_json, fetch_text, painted_pixels, present, set_input,
    wait_css,
};
use distillery_e2e::{e2e_enabled, serve_with, Browser};
use distillery_server::auth::hash_password;
use distillery_server::{AuthMode, Settings};
use fantoccini::{Client, Locator};

const PASSWORD: &str = "correct horse";

/// Waits until the page's path starts with `prefix` (client-side navigation).
async fn wait_path(c: &Client, prefix: &str) -> anyhow::Result<String> {
    for _ in 0..100 {
        let path = current_path(c).await?;
        if path.starts_with(prefix) {
            return Ok(path);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("never reached {prefix}: at {}", current_path(c).await?)
}

async fn log_in(c: &Client, name: &str) -> anyhow::Result<()> {
    wait_css(c, "#login-form").await?;
    set_input(c, "#login-name", name).await?;
    set_input(c, "#login-password", PASSWORD).await?;
    c.find(Locator::Css("#login-form button[type=submit]"))
        .await?
        .click()
        .await?;
    Ok(())
}

async fn log_out(c: &Client, base: &str) -> anyhow::Result<()> {
    c.goto(&format!("{base}/team")).await?;
    wait_css(c, "#logout-btn").await?.click().await?;
    wait_path(c, "/login").await?;
    Ok(())
}

/// Texts of the cells of the first column of `table`'s body.
async fn first_column(c: &Client, table: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for cell in c
        .find_all(Locator::Css(&format!("{table} tbody tr td:first-child")))
        .await?
    {
        out.push(cell.text().await?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_login_tokens_users_roles_and_share_links() -> anyhow::Result<()> {
    if !e2e_enabled("team_login_tokens_users_roles_and_share_links") {
        return Ok(());
    }
    let store = seeded_store().await;
    seed_results(&store).await;
    store
        .create_user("ada", &hash_password(PASSWORD)?, Role::Admin)
        .await?;
    let settings = Settings {
        auth: AuthMode::Team,
        ..Settings::default()
    };
    let base = serve_with(store, settings).await?;
    let browser = Browser::start().await?;
    let c = &browser.client;

    // Logged out, the run list answers 401 and the app sends us to the login page, which
    // brings us back after logging in.
    c.goto(&format!("{base}/")).await?;
    let path = wait_path(c, "/login").await?;
    assert_eq!(path, "/login?next=%2F");
    browser.screenshot("team-login").await?;
    set_input(c, "#login-name", "ada").await?;
    set_input(c, "#login-password", "wrong password").await?;
    c.find(Locator::Css("#login-form button[type=submit]"))
        .await?
        .click()
        .await?;
    let error = wait_css(c, "#login-form ~ p.error").await?.text().await?;
    assert!(error.contains("wrong user name or password"), "{error}");
    log_in(c, "ada").await?;
    wait_css(c, "#runs-table tbody tr").await?;
    assert_eq!(current_path(c).await?, "/");
    let who = wait_css(c, "#who").await?.text().await?;
    assert_eq!(who, "ada (admin)");

    // A token is shown once, works as a bearer token, and stops working when revoked.
    c.goto(&format!("{base}/team")).await?;
    wait_css(c, "#token-form").await?;
    set_input(c, "#token-name", "laptop").await?;
    c.find(Locator::Css("#token-form button"))
        .await?
        .click()
        .await?;
    let token = wait_css(c, "#new-token").await?.text().await?;
    assert_eq!(token.len(), 64, "{token}");
    wait_css(c, "#tokens-table tbody tr").await?;
    assert_eq!(first_column(c, "#tokens-table").await?, ["laptop"]);
    let me_with = |token: String| {
        let script = "const done = arguments[1]; fetch('/api/v1/auth/me', {credentials: 'omit', headers: {authorization: 'Bearer ' + arguments[0]}}).then(r => done(r.status), e => done(String(e)));";
        c.execute_async(script, vec![serde_json::json!(token)])
    };
    assert_eq!(me_with(token.clone()).await?, 200);

    // Users: add a viewer, promote her, demote her again.
    set_input(c, "#user-name", "vera").await?;
    set_input(c, "#user-password", PASSWORD).await?;
    set_input(c, "#user-role", "viewer").await?;
    c.find(Locator::Css("#user-form button"))
        .await?
        .click()
        .await?;
    wait_css(c, "#users-table tr[data-user=vera]").await?;
    browser.screenshot("team").await?;
    let role_of_vera = |c: &Client| {
        let c = c.clone();
        async move {
            let users = fetch_json(&c, "/api/v1/users").await?;
            let role = users
                .as_array()
                .and_then(|u| u.iter().find(|u| u["name"] == "vera"))
                .map(|u| u["role"].as_str().unwrap_or_default().to_string());
            anyhow::Ok(role.unwrap_or_default())
        }
    };
    assert_eq!(role_of_vera(c).await?, "viewer");
    for role in ["editor", "viewer"] {
        set_input(c, "#users-table tr[data-user=vera] select.role", role).await?;
        for _ in 0..50 {
            if role_of_vera(c).await? == role {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(role_of_vera(c).await?, role);
    }

    c.find(Locator::Css("#tokens-table button.revoke"))
        .await?
        .click()
        .await?;
    wait_css(c, "#token-form ~ p.empty").await?;
    assert_eq!(me_with(token).await?, 401);

    // An admin sees the write controls and makes a share link.
    c.goto(&format!("{base}/runs/1")).await?;
    wait_css(c, "#rerun-btn").await?;
    assert!(present(c, "nav a[href='/new']").await?);
    wait_css(c, "#share-btn").await?.click().await?;
    let share_url = wait_css(c, "#share-url")
        .await?
        .prop("value")
        .await?
        .unwrap_or_default();
    assert!(
        share_url.starts_with(&format!("{base}/share/1?share=")),
        "{share_url}"
    );
    log_out(c, &base).await?;

    // A viewer reads runs but is shown no write controls.
    log_in(c, "vera").await?;
    wait_css(c, "#runs-table tbody tr").await?;
    assert_eq!(wait_css(c, "#who").await?.text().await?, "vera (viewer)");
    assert!(
        !present(c, "nav a[href='/new']").await?,
        "viewer sees New run"
    );
    c.goto(&format!("{base}/runs/1")).await?;
    wait_css(c, "ol.stages li").await?;
    wait_css(c, "#metrics-table").await?;
    for write in ["#cancel-btn", "#rerun-btn", "#share-btn"] {
        assert!(!present(c, write).await?, "viewer sees {write}");
    }
    browser.screenshot("run-as-viewer").await?;
    log_out(c, &base).await?;

    // The share link, logged out: the run's results, read-only.
    c.goto(&share_url).await?;
    wait_css(c, "#read-only").await?;
    let heading = c.find(Locator::Css("h1")).await?.text().await?;
    assert!(heading.contains("baseline"), "{heading}");
    wait_css(c, "#metrics-table tr[data-metric=map]").await?;
    let after = c
        .find(Locator::Css(
            "#metrics-table tr[data-metric=map] td:nth-of-type(2)",
        ))
        .await?
        .text()
        .await?;
    assert_eq!(after, "0.4700");
    wait_css(c, "#chart-loss canvas").await?;
    assert!(
        painted_pixels(c, "#chart-loss").await? > 500,
        "blank loss chart"
    );
    let first_query = wait_css(c, "#queries-table tbody tr").await?.text().await?;
    assert!(first_query.contains("what is q1?"), "{first_query}");
    let csv = download_link(c, "#metrics-csv").await?;
    assert!(csv.starts_with("metric,before,after"), "{csv}");
    for write in [
        "#cancel-btn",
        "#rerun-btn",
        "#share-btn",
        "nav a[href='/new']",
    ] {
        assert!(!present(c, write).await?, "share view shows {write}");
    }
    assert_eq!(c.find(Locator::Css("#who")).await?.text().await?, "");
    browser.screenshot("share-link").await?;
    // The link reads only its run.
    let other = fetch_text(c, "/api/v1/runs/2").await?;
    assert!(other.contains("not allowed"), "{other}");

    browser.close().await
}
