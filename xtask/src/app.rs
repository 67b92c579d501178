//! Building the dashboard: cargo (wasm32, size profile) → wasm-bindgen → wasm-opt → app/dist.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use crate::setup;
use crate::util::{self, exec, step};

pub const DIST: &str = "app/dist";

/// Builds the app into `app/dist` (index.html, app.js, app_bg.wasm, style.css, echarts.min.js).
pub fn build() -> anyhow::Result<()> {
    setup::run(false)?;
    step("building the dashboard (wasm32, wasm-release profile)");
    // `erase_components` type-erases Leptos views: 7% smaller wasm (bench-app numbers in
    // README). With `--target`, RUSTFLAGS reaches only the wasm crates, not build scripts.
    exec(
        util::cargo()
            .args([
                "build",
                "-p",
                "distillery-app",
                "--target",
                "wasm32-unknown-unknown",
                "--profile",
                "wasm-release",
            ])
            .env("RUSTFLAGS", "--cfg erase_components"),
    )?;
    let wasm = util::target_dir().join("wasm32-unknown-unknown/wasm-release/app.wasm");
    std::fs::create_dir_all(DIST)?;
    let bindgen = util::which("wasm-bindgen").context("wasm-bindgen not found after setup")?;
    exec(
        Command::new(bindgen)
            .args([
                "--target",
                "web",
                "--no-typescript",
                "--out-dir",
                DIST,
                "--out-name",
                "app",
            ])
            .arg(&wasm),
    )?;
    let bg = Path::new(DIST).join("app_bg.wasm");
    // npm binaryen, never Debian's older wasm-opt, which emits modules that fail in the browser.
    exec(
        Command::new(setup::wasm_opt())
            .args([
                "-Oz",
                "--enable-reference-types",
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
                "--enable-sign-ext",
                "--enable-multivalue",
                "--enable-mutable-globals",
            ])
            .arg(&bg)
            .arg("-o")
            .arg(&bg),
    )?;
    copy("app/index.html", Path::new(DIST).join("index.html"))?;
    copy("style/main.css", Path::new(DIST).join("style.css"))?;
    copy(setup::echarts_js(), Path::new(DIST).join("echarts.min.js"))?;
    let size = std::fs::metadata(&bg)?.len();
    eprintln!(
        "dashboard built in {DIST} (app_bg.wasm {} KiB)",
        size / 1024
    );
    Ok(())
}

fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> anyhow::Result<()> {
    std::fs::copy(from.as_ref(), to.as_ref()).with_context(|| {
        format!(
            "copying {} to {}",
            from.as_ref().display(),
            to.as_ref().display()
        )
    })?;
    Ok(())
}

/// `cargo xtask bench-app`: builds the dashboard, then prints its bundle sizes and the time to
/// first render of the run list with 1,000 runs (the `bench-app` binary of `tests/`).
pub fn bench(args: &[String]) -> anyhow::Result<()> {
    if let Some(a) = args.first() {
        anyhow::bail!("cargo xtask bench-app takes no arguments (got {a:?})");
    }
    setup::run(true)?;
    build()?;
    step("measuring the dashboard (bundle size, first render with 1,000 runs)");
    let root = util::workspace_root()?;
    exec(
        util::cargo()
            .args(["run", "-q", "-p", "distillery-e2e", "--bin", "bench-app"])
            .env("DISTILLERY_DIST", root.join(DIST)),
    )
}
