//! Helpers for the end-to-end tests: an in-process server on a free port, and a headless
//! Chromium driven over WebDriver.
//!
//! The browser tests need Debian's `chromium` and `chromium-driver` and the built dashboard;
//! `cargo xtask test` installs and builds both and sets `DISTILLERY_E2E=1`. Under `CI=true`
//! a missing piece is a failure, never a skip. [`fixtures`] seeds runs, [`page`] has the
//! helpers that wait for, read and fill page elements.

pub mod fixtures;
pub mod page;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use distillery_server::{app_with, AppState, Settings, Store};
use fantoccini::{Client, ClientBuilder};

/// Whether browser tests should run: under `cargo xtask test` or CI. Otherwise they say why
/// they did nothing.
pub fn e2e_enabled(test: &str) -> bool {
    let on = std::env::var("DISTILLERY_E2E").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    if !on {
        eprintln!("{test}: browser test not run; use `cargo xtask test` (it installs Chromium and builds the app)");
    }
    on
}

/// The built dashboard directory.
pub fn dist_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("DISTILLERY_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../app/dist")));
    if !dir.join("index.html").is_file() || !dir.join("app_bg.wasm").is_file() {
        bail!(
            "the dashboard is not built in {}: run `cargo xtask build-app`",
            dir.display()
        );
    }
    Ok(dir)
}

/// Where screenshots go: `target/e2e-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/e2e-screenshots"
    ));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Serves `store` and the dashboard on a free loopback port under `--auth none`; returns the
/// base URL.
pub async fn serve(store: Store) -> anyhow::Result<String> {
    serve_with(store, Settings::default()).await
}

/// Like [`serve`] with explicit settings (e.g. `--auth team`).
pub async fn serve_with(store: Store, settings: Settings) -> anyhow::Result<String> {
    serve_dist(store, settings, dist_dir()?).await
}

/// Like [`serve_with`], serving the dashboard from `dist`.
pub async fn serve_dist(store: Store, settings: Settings, dist: PathBuf) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = app_with(AppState { store }, settings, Some(dist));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

/// A chromedriver process plus a WebDriver session in headless Chromium; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    pub async fn start() -> anyhow::Result<Browser> {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            if !std::path::Path::new(bin).is_file() {
                bail!("{bin} is missing: install Debian's chromium and chromium-driver (cargo xtask setup --browser)");
            }
        }
        let port = free_port()?;
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not listen on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile =
            std::env::temp_dir().join(format!("distillery-chromium-{}-{port}", std::process::id()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1280,800",
                         format!("--user-data-dir={}", profile.display())],
            }),
        );
        let client = ClientBuilder::rustls()
            .context("WebDriver TLS setup")?
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("starting a Chromium session")?;
        Ok(Browser { client, driver })
    }

    /// Saves a PNG of the current page under the screenshot dir.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    pub async fn close(mut self) -> anyhow::Result<()> {
        let client = self.client.clone();
        client.close().await?;
        let _ = self.driver.kill();
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
