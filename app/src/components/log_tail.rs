//! The stage log tail of a run page: the last lines the runners sent for the run's stages
//! (`GET /api/v1/runs/{id}/logs`), fetched again when the run's event stream announces new lines
//! (`log` events), and every few seconds as a fallback while the stream reconnects.

use std::time::Duration;

use distillery_api::StageLogLine;
use gloo_net::http::Request;
use leptos::prelude::*;

/// Lines shown.
const TAIL: usize = 200;
/// How often the tail is fetched again without a `log` event.
const FALLBACK_REFRESH: Duration = Duration::from_secs(15);

async fn fetch_tail(id: i64) -> Result<Vec<StageLogLine>, String> {
    let resp = Request::get(&format!("/api/v1/runs/{id}/logs?tail={TAIL}"))
        .send()
        .await
        .map_err(|e| format!("network error: {e}"))?;
    if !resp.ok() {
        return Err(format!("HTTP {}", resp.status()));
    }
    resp.json().await.map_err(|e| format!("bad response: {e}"))
}

/// `HH:MM:SS stage#attempt LEVEL message`.
fn format_line(l: &StageLogLine) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(l.time_ms as f64));
    let iso: String = date.to_iso_string().into();
    let time = iso.get(11..19).unwrap_or(&iso).to_string();
    format!(
        "{time} {}#{} {:<5} {}",
        l.kind.as_str(),
        l.attempt,
        l.level,
        l.message
    )
}

/// The log panel of run `id`; `announced` changes whenever a `log` event arrives.
#[component]
pub fn LogTail(id: i64, announced: ReadSignal<u32>) -> impl IntoView {
    let lines = RwSignal::new(Vec::<StageLogLine>::new());
    let error = RwSignal::new(None::<String>);
    let refresh = move || {
        leptos::task::spawn_local(async move {
            match fetch_tail(id).await {
                Ok(l) => {
                    lines.set(l);
                    error.set(None);
                }
                Err(e) => error.set(Some(e)),
            }
        })
    };
    Effect::new(move |_| {
        announced.track();
        refresh();
    });
    if let Ok(handle) = set_interval_with_handle(refresh, FALLBACK_REFRESH) {
        on_cleanup(move || handle.clear());
    }
    view! {
        <section class="stage-logs">
            <details open=true>
                <summary>"Stage logs (last " {TAIL} " lines)"</summary>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <pre id="stage-log">
                    {move || {
                        let l = lines.get();
                        if l.is_empty() {
                            "No log lines yet.".to_string()
                        } else {
                            l.iter().map(format_line).collect::<Vec<_>>().join("\n")
                        }
                    }}
                </pre>
            </details>
        </section>
    }
}
