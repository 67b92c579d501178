//! Side-by-side comparison of 2–20 runs: hyper-parameter diff, key metrics, overlaid loss.

use distillery_api::{Run, Series};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::runs::metric_cell;
use crate::api::{fetch_run, fetch_series, FetchError};
use crate::components::chart::{draw_when_ready, line_chart};

/// Parses `ids=1,2,3` into run ids, refusing anything but 2 to 20 of them.
pub fn parse_ids(ids: &str) -> Result<Vec<i64>, String> {
    let ids: Vec<i64> = ids
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse::<i64>()
                .map_err(|_| format!("bad run id {s:?}"))
        })
        .collect::<Result<_, _>>()?;
    if !(2..=20).contains(&ids.len()) {
        return Err(format!(
            "select 2 to 20 runs to compare (got {})",
            ids.len()
        ));
    }
    Ok(ids)
}

/// The runs' key metrics and configuration as CSV, one row per run.
pub fn compare_csv(runs: &[Run]) -> String {
    let mut out = String::from("id,name,map,mrr,ndcg");
    if let Some(first) = runs.first() {
        for (k, _) in first.config.fields() {
            out.push(',');
            out.push_str(k);
        }
    }
    out.push('\n');
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for run in runs {
        let m = run.metrics.as_ref();
        let cells: Vec<String> = [
            run.id.to_string(),
            quote(&run.name),
            m.map(|m| m.map.to_string()).unwrap_or_default(),
            m.map(|m| m.mrr.to_string()).unwrap_or_default(),
            m.map(|m| m.ndcg.to_string()).unwrap_or_default(),
        ]
        .into_iter()
        .chain(run.config.fields().into_iter().map(|(_, v)| quote(&v)))
        .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

async fn load(ids: Vec<i64>) -> Result<(Vec<Run>, Vec<(String, Series)>), FetchError> {
    let mut runs = Vec::new();
    let mut curves = Vec::new();
    for id in ids {
        let run = fetch_run(id).await?;
        if let Ok(series) = fetch_series(id, "loss").await {
            if !series.steps.is_empty() {
                curves.push((format!("{} {}", run.id, run.name), series));
            }
        }
        runs.push(run);
    }
    Ok((runs, curves))
}

/// The compare page, reading `?ids=`.
#[component]
pub fn ComparePage() -> impl IntoView {
    let query = use_query_map();
    let data = LocalResource::new(move || {
        let ids = query.read().get("ids").unwrap_or_default();
        async move {
            let ids = parse_ids(&ids).map_err(FetchError)?;
            load(ids).await
        }
    });
    view! {
        <section>
            <h1>"Compare runs"</h1>
            <Transition fallback=|| view! { <p class="loading">"Loading runs…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok((runs, curves)) => view! { <CompareView runs curves/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn CompareView(runs: Vec<Run>, curves: Vec<(String, Series)>) -> impl IntoView {
    let csv: String = js_sys::encode_uri_component(&compare_csv(&runs)).into();
    let only_diff = RwSignal::new(false);
    let fields: Vec<Vec<(&'static str, String)>> = runs.iter().map(|r| r.config.fields()).collect();
    let rows: Vec<(&'static str, Vec<String>, bool)> = fields[0]
        .iter()
        .enumerate()
        .map(|(i, (k, _))| {
            let values: Vec<String> = fields.iter().map(|f| f[i].1.clone()).collect();
            let differs = values.iter().any(|v| *v != values[0]);
            (*k, values, differs)
        })
        .collect();
    let smoothing = RwSignal::new(0.6);
    let has_curves = !curves.is_empty();
    let chart_error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        if has_curves {
            let chart = line_chart(&curves, smoothing.get(), false);
            draw_when_ready("chart-compare-loss".into(), chart, chart_error, 100);
        }
    });
    view! {
        <div class="actions">
            <a class="button" id="compare-csv" href=format!("data:text/csv;charset=utf-8,{csv}") download="compare.csv">"Download CSV"</a>
        </div>
        <h2>"Metrics"</h2>
        <table id="compare-metrics" class="data">
            <thead><tr><th>"Run"</th><th>"Status"</th><th>"MAP"</th><th>"MRR"</th><th>"NDCG"</th></tr></thead>
            <tbody>{runs.iter().map(|r| view! {
                <tr>
                    <td><a href=format!("/runs/{}", r.id)>{format!("{} {}", r.id, r.name)}</a></td>
                    <td>{r.status.as_str()}</td>
                    <td class="num">{metric_cell(r.metrics.as_ref().map(|m| m.map))}</td>
                    <td class="num">{metric_cell(r.metrics.as_ref().map(|m| m.mrr))}</td>
                    <td class="num">{metric_cell(r.metrics.as_ref().map(|m| m.ndcg))}</td>
                </tr>
            }).collect_view()}</tbody>
        </table>
        <h2>"Loss"</h2>
        {if has_curves { view! {
            <label>"Smoothing "<input type="range" min="0" max="0.99" step="0.01"
                prop:value=move || smoothing.get().to_string()
                on:input=move |ev| smoothing.set(event_target_value(&ev).parse().unwrap_or(0.0))/></label>
            <div id="chart-compare-loss" class="chart" style="width:900px;height:320px"></div>
        }.into_any() } else { view! { <p class="empty">"No loss curves recorded."</p> }.into_any() }}
        {move || chart_error.get().map(|e| view! { <p class="error">{e}</p> })}
        <h2>"Hyper-parameters"</h2>
        <label><input type="checkbox" prop:checked=move || only_diff.get()
            on:change=move |ev| only_diff.set(event_target_checked(&ev))/>" Only differences"</label>
        <table id="compare-config" class="data config">
            <thead><tr><th>"Field"</th>{runs.iter().map(|r| view! { <th>{format!("{} {}", r.id, r.name)}</th> }).collect_view()}</tr></thead>
            <tbody>{rows.into_iter().map(|(k, values, differs)| view! {
                <tr class:differs=differs style:display=move || if only_diff.get() && !differs { "none" } else { "" }>
                    <th scope="row">{k}</th>
                    {values.into_iter().map(|v| view! { <td>{v}</td> }).collect_view()}
                </tr>
            }).collect_view()}</tbody>
        </table>
    }
}
