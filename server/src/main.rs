//! `distillery-server`: serves the dashboard and the API.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use distillery_server::{app, AppState, Store};

/// Distillery's experiment server: dashboard, REST API and job queue.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "DISTILLERY_BIND", default_value = "127.0.0.1:8480")]
    bind: SocketAddr,
    /// `sqlite://PATH` (created on first start) or `postgres://…`. Defaults to a SQLite file in --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Where the default SQLite database and stored artifacts live.
    #[arg(long, env = "DISTILLERY_DATA_DIR", default_value = ".distillery/data")]
    data_dir: PathBuf,
    /// The built dashboard (index.html, app.js, app_bg.wasm).
    #[arg(long, env = "DISTILLERY_DIST", default_value = "app/dist")]
    dist: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .init();
    let args = Args::parse();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("distillery.db").display()));
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening database {url}"))?;
    let dist = args
        .dist
        .join("index.html")
        .exists()
        .then(|| args.dist.clone());
    if dist.is_none() {
        tracing::warn!(dist = %args.dist.display(), "no built dashboard found; serving the API only");
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    tracing::info!("Distillery listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(AppState { store }, dist))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
