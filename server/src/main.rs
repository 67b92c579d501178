//! `distillery-server`: serves the dashboard and the API; also `create-admin` and `bench`.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use distillery_api::Role;
use distillery_server::bench::{self, BenchPlan};
use distillery_server::{app_with, auth, queue, AppState, AuthMode, Settings, Store};

/// Distillery's experiment server: dashboard, REST API and job queue.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and the dashboard (the default).
    Serve,
    /// Create an admin user; the password is read from the first line of stdin.
    CreateAdmin {
        /// The admin's user name.
        #[arg(long)]
        name: String,
    },
    /// Seed runs with long loss curves and report p50/p95 of the run list and series endpoints.
    Bench {
        #[arg(long, default_value_t = 1000)]
        runs: usize,
        #[arg(long, default_value_t = 20_000)]
        points: i64,
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Measure only: the database was seeded by an earlier bench.
        #[arg(long)]
        no_seed: bool,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "DISTILLERY_BIND",
        default_value = "127.0.0.1:8480",
        global = true
    )]
    bind: SocketAddr,
    /// `sqlite://PATH` (created on first start) or `postgres://…`. Defaults to a SQLite file in --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Where the default SQLite database and stored artifacts live.
    #[arg(
        long,
        env = "DISTILLERY_DATA_DIR",
        default_value = ".distillery/data",
        global = true
    )]
    data_dir: PathBuf,
    /// Artifact paths reported by runners are relative to this directory (default: DATA_DIR/artifacts).
    #[arg(long, env = "DISTILLERY_ARTIFACT_ROOT", global = true)]
    artifact_root: Option<PathBuf>,
    /// The built dashboard (index.html, app.js, app_bg.wasm).
    #[arg(
        long,
        env = "DISTILLERY_DIST",
        default_value = "app/dist",
        global = true
    )]
    dist: PathBuf,
    /// `none` (loopback only: everyone is admin) or `team` (login, tokens, share links).
    #[arg(
        long,
        env = "DISTILLERY_AUTH",
        value_enum,
        default_value = "none",
        global = true
    )]
    auth: AuthMode,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .init();
    let cli = Cli::parse();
    let args = &cli.serve;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("distillery.db").display()));
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening database {url}"))?;
    match cli.command {
        None | Some(Command::Serve) => serve(args, store).await,
        Some(Command::CreateAdmin { name }) => create_admin(&store, &name).await,
        Some(Command::Bench {
            runs,
            points,
            requests,
            no_seed,
        }) => {
            let plan = BenchPlan {
                n_runs: runs,
                n_points: points,
                n_requests: requests,
            };
            run_bench(&store, &plan, !no_seed).await
        }
    }
}

async fn serve(args: &ServeArgs, store: Store) -> anyhow::Result<()> {
    args.auth
        .check_bind(args.bind)
        .map_err(anyhow::Error::msg)?;
    let artifact_root = args
        .artifact_root
        .clone()
        .unwrap_or_else(|| args.data_dir.join("artifacts"));
    std::fs::create_dir_all(&artifact_root)
        .with_context(|| format!("creating artifact root {}", artifact_root.display()))?;
    let dist = args
        .dist
        .join("index.html")
        .exists()
        .then(|| args.dist.clone());
    if dist.is_none() {
        tracing::warn!(dist = %args.dist.display(), "no built dashboard found; serving the API only");
    }
    queue::spawn_reaper(store.clone(), Duration::from_secs(5));
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    tracing::info!(auth = ?args.auth, "Distillery listening on http://{}", listener.local_addr()?);
    let settings = Settings {
        auth: args.auth,
        artifact_root,
    };
    axum::serve(listener, app_with(AppState { store }, settings, dist))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn create_admin(store: &Store, name: &str) -> anyhow::Result<()> {
    eprintln!("password for {name} (one line on stdin):");
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("reading the password")?;
    let password = password.trim_end_matches(['\r', '\n']);
    distillery_server::routes::check_new_user(name, password)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = auth::hash_password(password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let user = store
        .create_user(name, &hash, Role::Admin)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("created admin {} (id {})", user.name, user.id);
    Ok(())
}

async fn run_bench(store: &Store, plan: &BenchPlan, seed: bool) -> anyhow::Result<()> {
    if seed {
        let start = std::time::Instant::now();
        bench::seed(store, plan)
            .await
            .map_err(|e| anyhow::anyhow!("seeding: {e}"))?;
        println!(
            "seeded {} runs x {} loss points on {} in {:.1} s",
            plan.n_runs,
            plan.n_points,
            store.backend().name(),
            start.elapsed().as_secs_f64()
        );
    }
    let timings = bench::measure(store, plan)
        .await
        .map_err(|e| anyhow::anyhow!("measuring: {e}"))?;
    println!(
        "{:<52} {:>9} {:>9} {:>9}",
        "endpoint", "p50 ms", "p95 ms", "max ms"
    );
    for t in timings {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:<52} {:>9.2} {:>9.2} {:>9.2}",
            t.endpoint,
            ms(t.p50),
            ms(t.p95),
            ms(t.max)
        );
    }
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
