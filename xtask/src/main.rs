//! `cargo xtask`: the project's build, demo and test orchestrator.
//!
//! - `cargo xtask demo`: install what is missing, build, start the dashboard and run the demo.
//! - `cargo xtask test`: every check CI runs (fmt, clippy, unit, integration, Postgres,
//!   wasm build and browser end-to-end tests).
//! - `cargo xtask setup`: only the installs; `cargo xtask build-app`: only the dashboard;
//!   `cargo xtask bench-app`: its bundle size and first-render time with 1,000 runs.
//! - `cargo xtask gpu-build`: the CUDA `gpu-runner` (not part of CI), xz-compressed for carrying.

mod app;
mod demo;
mod gpu;
mod http;
mod setup;
mod test;
mod util;

use anyhow::bail;

const USAGE: &str = "usage: cargo xtask <demo|test|setup|build-app|bench-app|gpu-build>

  demo        install what is missing, start the dashboard (SQLite) and a CPU runner, run the demo
  test        run every test: fmt, clippy, unit, integration, Postgres, wasm build, browser e2e
  setup       install the wasm target, wasm-bindgen-cli, npm assets (and chromium with --browser)
  build-app   build the dashboard into app/dist
  bench-app   the dashboard's bundle size (raw, gzip) and first render of 1,000 runs in Chromium
  gpu-build   build gpu-runner with CUDA into target/cuda (installs the CUDA wheels), write gpu-runner.xz";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = util::workspace_root()?;
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("demo") => demo::run(&args[1..]),
        Some("test") => test::run(&args[1..]),
        Some("setup") => setup::run(args.iter().any(|a| a == "--browser")),
        Some("build-app") => app::build(),
        Some("bench-app") => app::bench(&args[1..]),
        Some("gpu-build") => gpu::build(),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown xtask command {other:?}\n\n{USAGE}"),
    }
}
