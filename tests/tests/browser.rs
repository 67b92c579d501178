//! Browser end-to-end tests: the real server, the built dashboard, headless Chromium.

use std::time::Duration;

use distillery_api::{
    ClaimRequest, CompleteJob, EvalResult, MetricBatch, MetricPoint, NewRun, QueryResult,
    RegisterRunner, RunConfig,
};
use distillery_e2e::{e2e_enabled, serve, Browser};
use distillery_server::Store;
use fantoccini::{Client, Locator};

async fn seeded_store() -> Store {
    let store = Store::connect("sqlite::memory:").await.expect("sqlite");
    for (name, lr) in [("baseline", 2e-5), ("higher-lr", 5e-5)] {
        let config = RunConfig {
            teacher: "/models/qwen3-reranker-8b".into(),
            student: "/models/bge-reranker-v2-m3".into(),
            train_data: "train.jsonl.gz".into(),
            test_data: "test.jsonl.gz".into(),
            lr,
            ..RunConfig::default()
        };
        store
            .create_run(&NewRun {
                experiment_id: None,
                name: name.into(),
                config,
                tags: vec!["e2e".into()],
            })
            .await
            .expect("seed run");
    }
    store
}

fn eval(label: &str, base: f64) -> EvalResult {
    EvalResult {
        label: label.into(),
        at_k: 10,
        map: base,
        mrr: base + 0.05,
        ndcg: base + 0.02,
        n_queries: 3,
        n_pairs: 30,
        ci: serde_json::json!({"map": [base - 0.01, base + 0.01]}),
    }
}

fn query(label: &str, id: &str, ndcg: f64) -> QueryResult {
    QueryResult {
        label: label.into(),
        query_id: id.into(),
        query: format!("what is {id}?"),
        ap: ndcg,
        rr: ndcg,
        ndcg,
    }
}

/// Plays a runner through the in-process queue: claims run 1's first job, reports loss, lr and
/// grad-norm curves, and completes it with before/after/teacher evaluations.
async fn seed_results(store: &Store) {
    let runner = store
        .register_runner(&RegisterRunner {
            name: "gpu-0".into(),
            device: "cuda:0 H100".into(),
            memory_bytes: 80 << 30,
        })
        .await
        .expect("register");
    let job = store
        .claim(
            runner.id,
            &ClaimRequest {
                lease_ms: None,
                kinds: vec![],
            },
        )
        .await
        .expect("claim")
        .expect("a ready job");
    assert_eq!(job.run_id, 1);
    let mut points = Vec::new();
    for step in 1..=200i64 {
        let s = step as f64;
        points.push(MetricPoint {
            name: "loss".into(),
            step,
            value: 2.0 / s.sqrt() + 0.1 * (s * 0.7).sin().abs(),
            time_ms: None,
        });
        points.push(MetricPoint {
            name: "lr".into(),
            step,
            value: 2e-5 * (1.0 - s / 200.0),
            time_ms: None,
        });
        points.push(MetricPoint {
            name: "grad_norm".into(),
            step,
            value: 1.0 + (s * 0.3).cos(),
            time_ms: None,
        });
    }
    store
        .report_metrics(
            job.id,
            &MetricBatch {
                lease: job.lease.clone(),
                points,
            },
        )
        .await
        .expect("metrics");
    let queries = vec![
        query("student_before", "q1", 0.5),
        query("student_after", "q1", 0.9),
        query("student_before", "q2", 0.8),
        query("student_after", "q2", 0.6),
    ];
    let d: distillery_api::QueryDetail = serde_json::from_value(serde_json::json!({
        "query_id": "q1", "query": "what is q1?", "n_positive": 1, "n_negative": 1,
        "before": {"ap": 0.5, "rr": 0.5, "ndcg": 0.5}, "after": {"ap": 0.9, "rr": 0.9, "ndcg": 0.9},
        "teacher": {"ap": 1.0, "rr": 1.0, "ndcg": 1.0},
        "passages": [
            {"text": "q1 answer passage", "relevant": true, "teacher": 4.0, "before": 0.1, "after": 2.0, "rank_before": 2, "rank_after": 1},
            {"text": "noise passage", "relevant": false, "teacher": -3.0, "before": 0.5, "after": -1.0, "rank_before": 1, "rank_after": 2}
        ],
        "top_before": [1, 0], "top_after": [0, 1]})).unwrap();
    store
        .report_query_details(
            job.id,
            &distillery_api::QueryDetailBatch {
                lease: job.lease.clone(),
                queries: vec![d],
            },
        )
        .await
        .expect("details");
    store
        .complete_job(
            job.id,
            &CompleteJob {
                lease: job.lease,
                skipped: false,
                message: None,
                evals: vec![
                    eval("student_before", 0.40),
                    eval("student_after", 0.47),
                    eval("teacher", 0.55),
                ],
                queries,
                manifest: serde_json::json!({"candle": "0.11.1"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
        )
        .await
        .expect("complete");
}

async fn wait_css(c: &Client, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
    Ok(c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await?)
}

/// Painted (non-transparent) pixels of the first canvas under `css`.
async fn painted_pixels(c: &Client, css: &str) -> anyhow::Result<u64> {
    let script = r#"
        const canvas = document.querySelector(arguments[0] + ' canvas');
        if (!canvas) return -1;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
        return n;"#;
    for _ in 0..50 {
        let n = c
            .execute(script, vec![serde_json::json!(css)])
            .await?
            .as_i64()
            .unwrap_or(-1);
        if n > 0 {
            return Ok(n as u64);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(0)
}

/// Fetches `url` inside the page (same origin, same cookies) and returns the body text.
async fn fetch_text(c: &Client, url: &str) -> anyhow::Result<String> {
    let script = "const done = arguments[1]; fetch(arguments[0]).then(r => r.text()).then(done, e => done('ERROR ' + e));";
    let text = c
        .execute_async(script, vec![serde_json::json!(url)])
        .await?;
    Ok(text.as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_page_lists_runs_and_deep_links_work() -> anyhow::Result<()> {
    if !e2e_enabled("runs_page_lists_runs_and_deep_links_work") {
        return Ok(());
    }
    let base = serve(seeded_store().await).await?;
    let browser = Browser::start().await?;
    let c = &browser.client;

    c.goto(&format!("{base}/")).await?;
    let table = wait_css(c, "#runs-table tbody tr").await?;
    let first_row = table.text().await?;
    assert!(
        first_row.contains("higher-lr"),
        "newest run first, got {first_row:?}"
    );
    let rows = c.find_all(Locator::Css("#runs-table tbody tr")).await?;
    assert_eq!(rows.len(), 2);
    browser.screenshot("runs").await?;

    // Sorting by name ascending puts "baseline" first (server-side sort).
    c.find(Locator::Css("button.sort[data-sort=name]"))
        .await?
        .click()
        .await?;
    c.find(Locator::Css("button.sort[data-sort=name]"))
        .await?
        .click()
        .await?;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//table[@id='runs-table']/tbody/tr[1][contains(., 'baseline')]",
        ))
        .await?;

    // A deep link is served by the SPA fallback and renders the run's stages.
    c.goto(&format!("{base}/runs/1")).await?;
    wait_css(c, "ol.stages li").await?;
    let stages = c.find_all(Locator::Css("ol.stages li")).await?;
    assert_eq!(stages.len(), 9);
    let heading = c.find(Locator::Css("h1")).await?.text().await?;
    assert!(heading.contains("baseline"), "{heading}");
    browser.screenshot("run").await?;

    browser.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_page_shows_curves_metrics_csv_and_compare() -> anyhow::Result<()> {
    if !e2e_enabled("run_page_shows_curves_metrics_csv_and_compare") {
        return Ok(());
    }
    let store = seeded_store().await;
    seed_results(&store).await;
    let expected = distillery_server::export::metric_rows(&store.list_evals(1).await?);
    let base = serve(store).await?;
    let browser = Browser::start().await?;
    let c = &browser.client;

    c.goto(&format!("{base}/runs/1")).await?;
    wait_css(c, "#metrics-table").await?;
    browser.screenshot("run-results").await?;
    wait_css(c, "#chart-loss canvas").await?;
    let painted = painted_pixels(c, "#chart-loss").await?;
    assert!(
        painted > 500,
        "loss chart looks blank: {painted} painted pixels"
    );
    assert!(
        painted_pixels(c, "#chart-lr").await? > 500,
        "lr chart blank"
    );

    // The metric table shows exactly the API's values.
    wait_css(c, "#metrics-table tbody tr").await?;
    for row in &expected {
        let css = format!("#metrics-table tr[data-metric='{}'] td", row.metric);
        let cells = c.find_all(Locator::Css(&css)).await?;
        let before = cells[0].text().await?;
        let after = cells[1].text().await?;
        let teacher = cells[5].text().await?;
        assert_eq!(
            before,
            format!("{:.4}", row.before.unwrap_or(f64::NAN)),
            "{}",
            row.metric
        );
        assert_eq!(
            after,
            format!("{:.4}", row.after.unwrap_or(f64::NAN)),
            "{}",
            row.metric
        );
        assert_eq!(
            teacher,
            format!("{:.4}", row.teacher.unwrap_or(f64::NAN)),
            "{}",
            row.metric
        );
    }

    // The metrics CSV behind the button parses and carries the same numbers.
    let href = c
        .find(Locator::Css("#metrics-csv"))
        .await?
        .attr("href")
        .await?
        .unwrap_or_default();
    let csv = fetch_text(c, &href).await?;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("metric,before,after,teacher,abs_change,rel_change,ci_low,ci_high,delta_ci_low,delta_ci_high,p_value")
    );
    let map: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    assert_eq!(map[0], "map");
    let after: f64 = map[2].parse()?;
    assert!((after - 0.47).abs() < 1e-9, "{map:?}");

    // Most improved query first; the regressed one first after toggling.
    let first = wait_css(c, "#queries-table tbody tr").await?.text().await?;
    assert!(first.contains("what is q1?"), "{first}");
    c.find(Locator::Css("#queries-table button.expand"))
        .await?
        .click()
        .await?;
    let after = wait_css(c, "table.top-after tbody tr")
        .await?
        .text()
        .await?;
    assert!(after.contains("q1 answer passage"), "{after}");
    c.execute(
        "document.querySelector('#queries-table').scrollIntoView()",
        vec![],
    )
    .await?;
    browser.screenshot("query-detail").await?;
    browser.screenshot("run-results").await?;

    // Select both runs on the list and compare them.
    c.goto(&format!("{base}/")).await?;
    wait_css(c, "#runs-table tbody tr").await?;
    for cb in c
        .find_all(Locator::Css("#runs-table tbody input[type=checkbox]"))
        .await?
    {
        cb.click().await?;
    }
    c.find(Locator::Css("#compare-btn")).await?.click().await?;
    wait_css(c, "#compare-config tr.differs").await?;
    let differs = c
        .find(Locator::Css("#compare-config tr.differs"))
        .await?
        .text()
        .await?;
    assert!(differs.starts_with("lr"), "{differs}");
    let metrics_rows = c
        .find_all(Locator::Css("#compare-metrics tbody tr"))
        .await?;
    assert_eq!(metrics_rows.len(), 2);
    browser.screenshot("compare").await?;

    c.goto(&format!("{base}/runners")).await?;
    let runner = wait_css(c, "#runners-table tbody tr").await?.text().await?;
    assert!(runner.contains("gpu-0"), "{runner}");
    browser.screenshot("runners").await?;

    browser.close().await
}
