//! A run launched from the New run form by a user, taken to done by a real (in-process) CPU
//! runner on the BM25 demo data with a tiny student, and watched live in the browser; then its
//! metric table and CSV are checked against the API, it is re-run with another learning rate,
//! and the two are compared.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::Device;
use distillery_e2e::page::{
    compare_listed_runs, current_path, download_link, fetch_json, painted_pixels, set_input,
    wait_css,
};
use distillery_e2e::{e2e_enabled, serve, Browser};
use distillery_server::Store;
use fantoccini::{Client, Locator};
use gpu_runner::demo::{write_demo_data, DemoOptions};
use gpu_runner::student::new_model::{write_new_model, Preset};
use gpu_runner::worker::{work, WorkerOptions};

/// The form fields a user changes from the reference defaults for the demo's tiny run.
fn demo_fields(dir: &Path) -> Vec<(&'static str, String)> {
    let path = |p: &str| dir.join(p).display().to_string();
    vec![
        ("teacher_kind", "bm25".into()),
        ("student", path("student")),
        ("train_data", path("data/train.jsonl")),
        ("test_data", path("data/test.jsonl")),
        ("batch_size", "32".into()),
        ("grad_accum", "1".into()),
        ("lr", "0.002".into()),
        ("max_length", "64".into()),
        ("bf16", "false".into()),
    ]
}

/// Waits up to 3 minutes for the run page's status badge to read `done`, without reloading.
async fn wait_done_live(c: &Client) -> anyhow::Result<()> {
    c.execute("window.__sameDocument = true; return null;", vec![])
        .await?;
    c.wait()
        .at_most(Duration::from_secs(180))
        .every(Duration::from_millis(250))
        .for_element(Locator::Css(".page-head .status-done"))
        .await?;
    let same = c
        .execute("return window.__sameDocument === true;", vec![])
        .await?;
    anyhow::ensure!(same == true, "the page reloaded while the run ran");
    let failed = c
        .find_all(Locator::Css(".page-head .status-failed"))
        .await?;
    anyhow::ensure!(failed.is_empty(), "the run failed");
    Ok(())
}

/// The run page's "Jobs and runners" table lists `n` jobs, all done on `runner` (it refreshes on
/// the run's events, so it may lag the stage list briefly).
async fn jobs_table_done_on(c: &Client, run: i64, n: usize, runner: &str) -> anyhow::Result<()> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.clear();
        for row in c.find_all(Locator::Css("#run-jobs tbody tr")).await? {
            // The table sits in a closed <details>: read textContent, not the rendered text.
            let cells = row.find_all(Locator::Css("td")).await?;
            let mut texts = Vec::new();
            for cell in cells {
                texts.push(cell.prop("textContent").await?.unwrap_or_default());
            }
            seen.push(texts);
        }
        let done = seen
            .iter()
            .filter(|t| {
                t.get(3).is_some_and(|s| s == "done") && t.get(5).is_some_and(|r| r == runner)
            })
            .count();
        if seen.len() == n && done == n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let api = fetch_json(c, &format!("/api/v1/runs/{run}/jobs")).await?;
    anyhow::bail!("jobs table never showed {n} jobs done on {runner}: {seen:?}; the API: {api}")
}

/// The run id in the run page's path.
async fn run_id_from_path(c: &Client) -> anyhow::Result<i64> {
    for _ in 0..100 {
        let path = current_path(c).await?;
        if let Some(id) = path.strip_prefix("/runs/").and_then(|s| s.parse().ok()) {
            return Ok(id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the form did not open the run page")
}

/// The metric table's cells equal the API's metric rows (formatted to 4 decimals).
async fn metric_table_matches_api(c: &Client, id: i64) -> anyhow::Result<()> {
    let rows = fetch_json(c, &format!("/api/v1/runs/{id}/metrics")).await?;
    let rows = rows.as_array().cloned().unwrap_or_default();
    anyhow::ensure!(rows.len() == 3, "metric rows: {rows:?}");
    wait_css(c, "#metrics-table tbody tr").await?;
    for row in rows {
        let metric = row["metric"].as_str().unwrap_or_default();
        let css = format!("#metrics-table tr[data-metric='{metric}'] td");
        let cells = c.find_all(Locator::Css(&css)).await?;
        for (column, key) in [(0, "before"), (1, "after"), (5, "teacher")] {
            let value = row[key].as_f64().expect("evaluated");
            assert_eq!(
                cells[column].text().await?,
                format!("{value:.4}"),
                "{metric} {key}"
            );
        }
    }
    Ok(())
}

/// The metrics CSV behind the button parses, row by row, to the API's numbers.
async fn metrics_csv_matches_api(c: &Client, id: i64) -> anyhow::Result<()> {
    let csv = download_link(c, "#metrics-csv").await?;
    let api = fetch_json(c, &format!("/api/v1/runs/{id}/metrics")).await?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    assert_eq!(header[..3], ["metric", "before", "after"]);
    let mut parsed = 0;
    for (line, row) in lines.zip(api.as_array().into_iter().flatten()) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        assert_eq!(cells[0], row["metric"].as_str().unwrap_or_default());
        for (i, key) in header.iter().enumerate().skip(1) {
            if let Some(expected) = row[*key].as_f64() {
                let got: f64 = cells[i].parse()?;
                assert!((got - expected).abs() < 1e-9, "{key}: {got} vs {expected}");
            }
        }
        parsed += 1;
    }
    assert_eq!(parsed, 3, "{csv}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_from_the_form_watch_it_finish_and_compare() -> anyhow::Result<()> {
    if !e2e_enabled("launch_from_the_form_watch_it_finish_and_compare") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let small = DemoOptions {
        train_queries: 40,
        test_queries: 20,
        ..DemoOptions::default()
    };
    write_demo_data(&dir.path().join("data"), &small)?;
    write_new_model(Preset::Tiny, &dir.path().join("student"), None, 1)?;
    let base = serve(Store::connect("sqlite::memory:").await?).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        let mut opts = WorkerOptions::new(&base, "e2e-cpu", &dir.path().join("runner"));
        opts.poll = Duration::from_millis(100);
        opts.lease_ms = 600_000;
        opts.catalog = vec![dir.path().to_path_buf()];
        std::thread::spawn(move || work(&opts, &Device::Cpu, &stop))
    };
    let browser = Browser::start().await?;
    let c = &browser.client;

    // (a) Launch from the form and watch the run reach done live. The form offers the student
    // directory and data files the runner reported (`--catalog`) once it has registered.
    c.goto(&format!("{base}/")).await?;
    let mut registered = false;
    for _ in 0..100 {
        let runners = fetch_json(c, "/api/v1/runners").await?;
        if runners.as_array().is_some_and(|r| !r.is_empty()) {
            registered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(registered, "the runner never registered");
    c.goto(&format!("{base}/new")).await?;
    wait_css(c, "#cfg-teacher_kind").await?;
    let student = dir.path().canonicalize()?.join("student");
    wait_css(
        c,
        &format!("#catalog-models option[value=\"{}\"]", student.display()),
    )
    .await?;
    assert_eq!(
        c.find(Locator::Css("#cfg-student"))
            .await?
            .attr("list")
            .await?
            .as_deref(),
        Some("catalog-models")
    );
    set_input(c, "#run-name", "live demo").await?;
    for (key, value) in demo_fields(dir.path()) {
        set_input(c, &format!("#cfg-{key}"), &value).await?;
    }
    browser.screenshot("new-run").await?;
    c.find(Locator::Css("#new-run button[type=submit]"))
        .await?
        .click()
        .await?;
    let first = run_id_from_path(c).await?;
    wait_css(c, "ol.stages li").await?;
    wait_done_live(c).await?;
    let done = c
        .find_all(Locator::Css(
            "ol.stages li.status-done, ol.stages li.status-skipped",
        ))
        .await?;
    assert_eq!(done.len(), 9, "every stage done");
    jobs_table_done_on(c, first, 9, "e2e-cpu").await?;
    browser.screenshot("run-live-done").await?;

    // (b) The runner streamed a loss curve while training, and the chart draws it.
    let names = fetch_json(c, &format!("/api/v1/runs/{first}/series/names")).await?;
    assert!(
        names
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == "loss")),
        "no loss series streamed: {names}"
    );
    wait_css(c, "#chart-loss canvas").await?;
    assert!(
        painted_pixels(c, "#chart-loss").await? > 500,
        "blank loss chart"
    );
    // (c) and (d): the metric table and its CSV hold the API's numbers.
    metric_table_matches_api(c, first).await?;
    metrics_csv_matches_api(c, first).await?;
    browser.screenshot("run-live-results").await?;

    // Re-run with a lower learning rate from the pre-filled form.
    c.find(Locator::Css("#rerun-btn")).await?.click().await?;
    wait_css(c, "#cfg-lr").await?;
    let prefilled = c
        .find(Locator::Css("#cfg-student"))
        .await?
        .prop("value")
        .await?;
    assert_eq!(
        prefilled.as_deref(),
        Some(demo_fields(dir.path())[1].1.as_str())
    );
    set_input(c, "#cfg-lr", "0.0005").await?;
    c.find(Locator::Css("#new-run button[type=submit]"))
        .await?
        .click()
        .await?;
    let second = run_id_from_path(c).await?;
    assert_ne!(first, second);
    wait_css(c, "ol.stages li").await?;
    wait_done_live(c).await?;

    // (e) Compare the two: lr differs, and each run's MAP is the API's.
    compare_listed_runs(c, &base).await?;
    wait_css(c, "#compare-metrics tbody tr").await?;
    let differs: Vec<String> = {
        let mut out = Vec::new();
        for row in c
            .find_all(Locator::Css("#compare-config tr.differs th"))
            .await?
        {
            out.push(row.text().await?);
        }
        out
    };
    assert!(differs.contains(&"lr".to_string()), "{differs:?}");
    let mut shown = Vec::new();
    for row in c
        .find_all(Locator::Css("#compare-metrics tbody tr"))
        .await?
    {
        let cells = row.find_all(Locator::Css("td")).await?;
        let run = cells[0].text().await?;
        let id: i64 = run.split(' ').next().unwrap_or_default().parse()?;
        shown.push((id, cells[2].text().await?));
    }
    shown.sort();
    assert_eq!(shown.len(), 2, "{shown:?}");
    for (id, map_cell) in shown {
        let run = fetch_json(c, &format!("/api/v1/runs/{id}")).await?;
        let map = run["metrics"]["map"].as_f64().expect("evaluated run");
        assert_eq!(map_cell, format!("{map:.4}"), "run {id}");
    }
    browser.screenshot("compare-live").await?;

    stop.store(true, Ordering::Relaxed);
    let jobs = tokio::task::spawn_blocking(move || worker.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the worker panicked"))??;
    assert_eq!(jobs, 18, "two runs of 9 stages");
    browser.close().await
}
