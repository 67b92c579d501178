//! Browser end-to-end tests: the real server, the built dashboard, headless Chromium.

use distillery_api::{NewRun, RunConfig};
use distillery_e2e::{e2e_enabled, serve, Browser};
use distillery_server::Store;
use fantoccini::Locator;

async fn seeded_store() -> Store {
    let store = Store::connect("sqlite::memory:").await.expect("sqlite");
    for name in ["baseline", "higher-lr"] {
        let config = RunConfig {
            teacher: "/models/qwen3-reranker-8b".into(),
            student: "/models/bge-reranker-v2-m3".into(),
            train_data: "train.jsonl.gz".into(),
            test_data: "test.jsonl.gz".into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_page_lists_runs_and_deep_links_work() -> anyhow::Result<()> {
    if !e2e_enabled("runs_page_lists_runs_and_deep_links_work") {
        return Ok(());
    }
    let base = serve(seeded_store().await).await?;
    let browser = Browser::start().await?;
    let c = &browser.client;

    c.goto(&format!("{base}/")).await?;
    let table = c
        .wait()
        .for_element(Locator::Css("#runs-table tbody tr"))
        .await?;
    let first_row = table.text().await?;
    assert!(
        first_row.contains("higher-lr"),
        "newest run first, got {first_row:?}"
    );
    let rows = c.find_all(Locator::Css("#runs-table tbody tr")).await?;
    assert_eq!(rows.len(), 2);
    browser.screenshot("runs").await?;

    // A deep link is served by the SPA fallback and renders the run's stages.
    c.goto(&format!("{base}/runs/1")).await?;
    c.wait().for_element(Locator::Css("ol.stages li")).await?;
    let stages = c.find_all(Locator::Css("ol.stages li")).await?;
    assert_eq!(stages.len(), 9);
    let heading = c.find(Locator::Css("h1")).await?.text().await?;
    assert!(heading.contains("baseline"), "{heading}");
    browser.screenshot("run").await?;

    browser.close().await
}
