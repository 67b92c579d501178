//! Browser end-to-end tests: the real server, the built dashboard, headless Chromium.

use std::time::Duration;

use distillery_e2e::fixtures::{seed_results, seeded_store};
use distillery_e2e::page::{compare_listed_runs, download_link, painted_pixels, wait_css};
use distillery_e2e::{e2e_enabled, serve, Browser};
use fantoccini::Locator;

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

    // Status checkboxes filter server-side, several at once: no run failed; both are queued.
    c.find(Locator::Css("#filter-status-failed"))
        .await?
        .click()
        .await?;
    wait_css(c, "p.empty").await?;
    c.find(Locator::Css("#filter-status-queued"))
        .await?
        .click()
        .await?;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//table[@id='runs-table']/tbody[count(tr)=2]",
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
    let csv = download_link(c, "#metrics-csv").await?;
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
    compare_listed_runs(c, &base).await?;
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
