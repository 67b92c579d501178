//! `cargo xtask bench-app`: the dashboard's bundle size (raw and gzip) and the time to first
//! render of the run list with 1,000 runs in the server, in headless Chromium.
//!
//! First render is measured in the page: a `MutationObserver` added to a copy of `index.html`
//! records `performance.now()` (milliseconds since navigation start) when the first row of
//! `#runs-table` appears. The first load has an empty cache; the rest are reloads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use distillery_e2e::{dist_dir, serve_dist, Browser};
use distillery_server::bench::{seed, BenchPlan};
use distillery_server::{Settings, Store};
use flate2::write::GzEncoder;
use flate2::Compression;

const RUNS: usize = 1000;
const RELOADS: usize = 9;

/// Records when the run table's first row is in the document.
const PROBE: &str = r#"<script>
(function () {
  const rows = () => document.querySelector('#runs-table tbody tr');
  const seen = new MutationObserver(() => {
    if (rows()) { window.__firstRowsMs = performance.now(); seen.disconnect(); }
  });
  seen.observe(document, { childList: true, subtree: true });
})();
</script>"#;

fn gzip_len(bytes: &[u8]) -> anyhow::Result<usize> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(bytes)?;
    Ok(gz.finish()?.len())
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// Prints raw and gzip sizes of the files the browser must load before the app runs.
fn print_sizes(dist: &Path) -> anyhow::Result<()> {
    println!("| file | raw | gzip -9 |\n|---|---|---|");
    let (mut raw_total, mut gz_total) = (0, 0);
    for name in [
        "app_bg.wasm",
        "app.js",
        "echarts.min.js",
        "style.css",
        "index.html",
    ] {
        let bytes = std::fs::read(dist.join(name))
            .with_context(|| format!("reading {name} in {}", dist.display()))?;
        let gz = gzip_len(&bytes)?;
        println!("| {name} | {} | {} |", kib(bytes.len()), kib(gz));
        if name.starts_with("app") {
            raw_total += bytes.len();
            gz_total += gz;
        }
    }
    println!(
        "| **app (wasm + JS glue)** | **{}** | **{}** |",
        kib(raw_total),
        kib(gz_total)
    );
    Ok(())
}

/// A copy of `dist` whose `index.html` carries the first-render probe.
fn probed_dist(dist: &Path) -> anyhow::Result<PathBuf> {
    let out = std::env::temp_dir().join(format!("distillery-bench-app-{}", std::process::id()));
    std::fs::create_dir_all(&out)?;
    for entry in std::fs::read_dir(dist)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), out.join(entry.file_name()))?;
        }
    }
    let index = std::fs::read_to_string(dist.join("index.html"))?;
    let Some(at) = index.find("<head>") else {
        bail!("no <head> in {}/index.html", dist.display());
    };
    let probed = format!("{}{PROBE}{}", &index[..at + 6], &index[at + 6..]);
    std::fs::write(out.join("index.html"), probed)?;
    Ok(out)
}

/// Loads the run list and returns the milliseconds from navigation start to its first row.
async fn first_render_ms(browser: &Browser, url: &str) -> anyhow::Result<f64> {
    let c = &browser.client;
    c.goto(url).await?;
    for _ in 0..600 {
        let v = c
            .execute("return window.__firstRowsMs ?? null;", vec![])
            .await?;
        if let Some(ms) = v.as_f64() {
            let rows = c
                .execute(
                    "return document.querySelectorAll('#runs-table tbody tr').length;",
                    vec![],
                )
                .await?;
            if rows.as_u64().unwrap_or(0) == 0 {
                bail!("the run table emptied after its first render");
            }
            return Ok(ms);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the run list never rendered a row within 30 s")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dist = dist_dir()?;
    println!("Dashboard bundle ({})\n", dist.display());
    print_sizes(&dist)?;

    let store = Store::connect("sqlite::memory:").await?;
    let plan = BenchPlan {
        n_runs: RUNS,
        n_points: 100,
        n_requests: 0,
    };
    seed(&store, &plan).await?;
    let probed = probed_dist(&dist)?;
    let base = serve_dist(store, Settings::default(), probed.clone()).await?;
    let browser = Browser::start().await?;
    let url = format!("{base}/");
    let cold = first_render_ms(&browser, &url).await?;
    let mut warm = Vec::with_capacity(RELOADS);
    for _ in 0..RELOADS {
        warm.push(first_render_ms(&browser, &url).await?);
    }
    browser.close().await?;
    let _ = std::fs::remove_dir_all(&probed);
    warm.sort_by(f64::total_cmp);
    println!(
        "\nFirst render of the run list ({RUNS} runs in the server, first page of 50 rows; headless Chromium, SQLite in memory)\n"
    );
    println!("| load | navigation start → first row |\n|---|---|");
    println!("| first (empty cache) | {cold:.0} ms |");
    println!(
        "| reloads: median of {RELOADS} (min – max) | {:.0} ms ({:.0} – {:.0}) |",
        warm[RELOADS / 2],
        warm[0],
        warm[RELOADS - 1]
    );
    Ok(())
}
