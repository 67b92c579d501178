//! Results of a run: metric table and bar chart, artifacts, manifest.

use charming::component::{Axis, Legend};
use charming::element::{AxisType, Tooltip, Trigger};
use charming::series::Bar;
use charming::Chart;
use distillery_api::MetricRow;
use leptos::prelude::*;

use super::runs::metric_cell;
use crate::api::{fetch_artifacts, fetch_metrics};
use crate::components::chart::draw_when_ready;

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{:+.2}%", v * 100.0))
}

/// The metric table (before, after, change, 95% CI, teacher, p-value) with its CSV and a bar
/// chart.
#[component]
pub fn MetricsSection(id: i64) -> impl IntoView {
    let rows = LocalResource::new(move || fetch_metrics(id));
    view! {
        <section>
            <div class="page-head">
                <h2>"Metrics"</h2>
                <a class="button" id="metrics-csv" href=format!("/api/v1/runs/{id}/export/metrics.csv")
                    download=format!("run-{id}-metrics.csv")>"Download CSV"</a>
            </div>
            {move || rows.get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                Ok(rows) if rows.iter().all(|r| r.before.is_none() && r.after.is_none()) =>
                    view! { <p class="empty">"Not evaluated yet."</p> }.into_any(),
                Ok(rows) => view! { <MetricTable rows=rows.clone()/> <MetricBars rows/> }.into_any(),
            })}
        </section>
    }
}

#[component]
fn MetricTable(rows: Vec<MetricRow>) -> impl IntoView {
    view! {
        <table id="metrics-table" class="data metrics">
            <thead><tr>
                <th>"Metric"</th><th>"Before"</th><th>"After"</th><th>"Δ abs"</th><th>"Δ rel"</th>
                <th title="Paired bootstrap 95% CI of the change when the compare stage ran, else the CI of after as reported">"95% CI"</th>
                <th>"Teacher (upper bound)"</th>
                <th title="Two-sided paired randomization test of the change">"p-value"</th>
            </tr></thead>
            <tbody>{rows.into_iter().map(|r| {
                let ci = match (r.delta_ci_low, r.delta_ci_high, r.ci_low, r.ci_high) {
                    (Some(lo), Some(hi), _, _) => format!("Δ [{lo:+.4}, {hi:+.4}]"),
                    (_, _, Some(lo), Some(hi)) => format!("after [{lo:.4}, {hi:.4}]"),
                    _ => "–".into(),
                };
                let p_value = r.p_value.map_or_else(|| "–".into(), |p| format!("{p:.4}"));
                let class = match r.abs_change { Some(d) if d > 0.0 => "num up", Some(d) if d < 0.0 => "num down", _ => "num" };
                view! {
                    <tr data-metric=r.metric.clone()>
                        <th scope="row">{r.metric.clone()}</th>
                        <td class="num">{metric_cell(r.before)}</td>
                        <td class="num">{metric_cell(r.after)}</td>
                        <td class=class>{metric_cell(r.abs_change)}</td>
                        <td class=class>{pct(r.rel_change)}</td>
                        <td class="num">{ci}</td>
                        <td class="num">{metric_cell(r.teacher)}</td>
                        <td class="num">{p_value}</td>
                    </tr>
                }
            }).collect_view()}</tbody>
        </table>
    }
}

#[component]
fn MetricBars(rows: Vec<MetricRow>) -> impl IntoView {
    let names: Vec<String> = rows.iter().map(|r| r.metric.clone()).collect();
    let values = |f: fn(&MetricRow) -> Option<f64>| -> Vec<f64> {
        rows.iter().map(|r| f(r).unwrap_or(0.0)).collect()
    };
    let chart = Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .legend(Legend::new())
        .x_axis(Axis::new().type_(AxisType::Category).data(names))
        .y_axis(Axis::new().type_(AxisType::Value))
        .series(Bar::new().name("before").data(values(|r| r.before)))
        .series(Bar::new().name("after").data(values(|r| r.after)))
        .series(Bar::new().name("teacher").data(values(|r| r.teacher)));
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| draw_when_ready("chart-metric-bars".into(), chart.clone(), error, 100));
    view! {
        <div id="chart-metric-bars" class="chart" style="width:600px;height:300px"></div>
        {move || error.get().map(|e| view! { <p class="error">{e}</p> })}
    }
}

/// The run's artifacts with download links.
#[component]
pub fn Artifacts(id: i64) -> impl IntoView {
    let artifacts = LocalResource::new(move || fetch_artifacts(id));
    view! {
        <section>
            <h2>"Artifacts"</h2>
            {move || artifacts.get().map(|r| match r {
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                Ok(list) if list.is_empty() => view! { <p class="empty">"No artifacts yet."</p> }.into_any(),
                Ok(list) => view! {
                    <table class="data"><thead><tr><th>"Kind"</th><th>"Path"</th><th>"Size"</th><th>"SHA-256"</th><th></th></tr></thead>
                    <tbody>{list.into_iter().map(|a| view! {
                        <tr>
                            <td>{a.kind.clone()}</td>
                            <td class="path">{a.path.clone().unwrap_or_else(|| "(stored)".into())}</td>
                            <td class="num">{format!("{} B", a.size_bytes)}</td>
                            <td class="path">{a.sha256.chars().take(12).collect::<String>()}</td>
                            <td><a href=format!("/api/v1/runs/{id}/artifacts/{}", a.id) download="">"Download"</a></td>
                        </tr>
                    }).collect_view()}</tbody></table>
                }.into_any(),
            })}
        </section>
    }
}

/// The run's manifest (versions, hashes, timings) as formatted JSON.
#[component]
pub fn Manifest(manifest: serde_json::Value) -> impl IntoView {
    let empty = manifest.is_null() || manifest.as_object().is_some_and(|m| m.is_empty());
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    view! {
        <section>
            <h2>"Manifest"</h2>
            {if empty { view! { <p class="empty">"No manifest yet."</p> }.into_any() }
             else { view! { <pre class="manifest">{text}</pre> }.into_any() }}
        </section>
    }
}
