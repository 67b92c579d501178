//! `cargo xtask test`: everything CI checks, in order of increasing cost.

use crate::util::{self, exec, step};
use crate::{app, setup};

pub fn run_all() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    if util::is_ci() {
        eprintln!("CI=true: PostgreSQL and the browser are required; nothing is skipped");
    }
    step("installing what the tests need");
    setup::run(true)?;
    setup::postgres()?;

    step("cargo fmt --check");
    exec(util::cargo().args(["fmt", "--all", "--check"]))?;

    step("cargo clippy (native crates, all targets)");
    exec(util::cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    step("cargo clippy (the dashboard, wasm32)");
    exec(util::cargo().args([
        "clippy",
        "-p",
        "distillery-app",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ]))?;

    step("building the dashboard for the browser tests");
    app::build()?;

    step("cargo test (unit, integration, Postgres, browser end-to-end)");
    let root = util::workspace_root()?;
    exec(
        util::cargo()
            .args(["test", "--workspace", "--exclude", "distillery-app"])
            .env("DISTILLERY_E2E", "1")
            .env("DISTILLERY_DIST", root.join(app::DIST))
            .env(
                "DISTILLERY_QWEN3_TOKENIZER",
                root.join(setup::qwen3_tokenizer()),
            ),
    )?;

    eprintln!(
        "\nall checks passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(a) = args.first() {
        anyhow::bail!("cargo xtask test takes no arguments (got {a:?})");
    }
    run_all()
}
