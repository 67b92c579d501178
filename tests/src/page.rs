//! Page helpers of the browser tests: waiting for elements, reading canvases, fetching in-page,
//! filling inputs the way a user does.

use std::time::Duration;

use fantoccini::{Client, Locator};

/// Waits up to 20 s for an element matching `css`.
pub async fn wait_css(c: &Client, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
    Ok(c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await?)
}

/// Painted (non-transparent) pixels of the first canvas under `css`.
pub async fn painted_pixels(c: &Client, css: &str) -> anyhow::Result<u64> {
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
pub async fn fetch_text(c: &Client, url: &str) -> anyhow::Result<String> {
    let script = "const done = arguments[1]; fetch(arguments[0]).then(r => r.text()).then(done, e => done('ERROR ' + e));";
    let text = c
        .execute_async(script, vec![serde_json::json!(url)])
        .await?;
    Ok(text.as_str().unwrap_or_default().to_string())
}

/// Fetches `url` inside the page and parses the body as JSON.
pub async fn fetch_json(c: &Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let text = fetch_text(c, url).await?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{url}: {e}: {text}"))
}

/// Sets an input's value and fires `input` and `change`, as typing and leaving the field do.
pub async fn set_input(c: &Client, css: &str, value: &str) -> anyhow::Result<()> {
    let script = r#"
        const el = document.querySelector(arguments[0]);
        if (!el) return false;
        el.value = arguments[1];
        el.dispatchEvent(new Event('input', { bubbles: true }));
        el.dispatchEvent(new Event('change', { bubbles: true }));
        return true;"#;
    let found = c
        .execute(
            script,
            vec![serde_json::json!(css), serde_json::json!(value)],
        )
        .await?;
    anyhow::ensure!(found == serde_json::json!(true), "no element {css}");
    Ok(())
}

/// Whether an element matching `css` is in the page now.
pub async fn present(c: &Client, css: &str) -> anyhow::Result<bool> {
    Ok(!c.find_all(Locator::Css(css)).await?.is_empty())
}

/// The page's path (and query), for checking client-side navigation.
pub async fn current_path(c: &Client) -> anyhow::Result<String> {
    let url = c.current_url().await?;
    Ok(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    })
}

/// Ticks every run on the first page of the run list and opens Compare.
pub async fn compare_listed_runs(c: &Client, base: &str) -> anyhow::Result<()> {
    c.goto(&format!("{base}/")).await?;
    wait_css(c, "#runs-table tbody tr").await?;
    for cb in c
        .find_all(Locator::Css("#runs-table tbody input[type=checkbox]"))
        .await?
    {
        cb.click().await?;
    }
    c.find(Locator::Css("#compare-btn")).await?.click().await?;
    Ok(())
}

/// Downloads what the link matching `css` points at (as clicking it would) and returns the text.
pub async fn download_link(c: &Client, css: &str) -> anyhow::Result<String> {
    let href = c
        .find(Locator::Css(css))
        .await?
        .attr("href")
        .await?
        .ok_or_else(|| anyhow::anyhow!("{css} has no href"))?;
    fetch_text(c, &href).await
}
