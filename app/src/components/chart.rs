//! Line charts of a run's metric series (loss, lr, grad norm), drawn with charming/ECharts.

use charming::component::{Axis, Grid, Legend};
use charming::element::{AxisType, LineStyle, Tooltip, Trigger};
use charming::series::Line;
use charming::{Chart, WasmRenderer};
use distillery_api::Series;
use leptos::prelude::*;

use crate::api::fetch_series;

/// Chart size in CSS pixels; fits two side by side at 1280 px.
const WIDTH: u32 = 600;
const HEIGHT: u32 = 300;

/// Exponential moving average with bias correction (as TensorBoard's smoothing slider).
pub fn ema(values: &[f64], weight: f64) -> Vec<f64> {
    let weight = weight.clamp(0.0, 0.999);
    let mut last = 0.0;
    let mut debias = 1.0;
    values
        .iter()
        .map(|v| {
            last = last * weight + (1.0 - weight) * v;
            debias *= weight;
            if debias < 1.0 {
                last / (1.0 - debias)
            } else {
                *v
            }
        })
        .collect()
}

fn points(steps: &[i64], values: &[f64], log: bool) -> Vec<Vec<f64>> {
    steps
        .iter()
        .zip(values)
        .filter(|(_, v)| v.is_finite() && (!log || **v > 0.0))
        .map(|(s, v)| vec![*s as f64, *v])
        .collect()
}

/// One chart option: each `(label, series)` as a line, raw and (when `smoothing > 0`) smoothed.
pub fn line_chart(curves: &[(String, Series)], smoothing: f64, log: bool) -> Chart {
    let y_type = if log { AxisType::Log } else { AxisType::Value };
    let mut chart = Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .legend(Legend::new())
        .grid(Grid::new().left("12%").right("4%").top("14%").bottom("12%"))
        .x_axis(Axis::new().type_(AxisType::Value).name("step"))
        .y_axis(Axis::new().type_(y_type).scale(true));
    for (label, series) in curves {
        let smoothed = smoothing > 0.0;
        let raw = Line::new()
            .name(label.clone())
            .show_symbol(false)
            .data(points(&series.steps, &series.values, log));
        let raw = if smoothed && curves.len() == 1 {
            raw.line_style(LineStyle::new().opacity(0.3))
        } else {
            raw
        };
        if smoothed && curves.len() == 1 {
            chart = chart.series(raw).series(
                Line::new()
                    .name(format!("{label} (EMA)"))
                    .show_symbol(false)
                    .data(points(&series.steps, &ema(&series.values, smoothing), log)),
            );
        } else if smoothed {
            chart = chart.series(
                Line::new()
                    .name(label.clone())
                    .show_symbol(false)
                    .data(points(&series.steps, &ema(&series.values, smoothing), log)),
            );
        } else {
            chart = chart.series(raw);
        }
    }
    chart
}

/// Draws `chart` into the element `id` (which must already be in the document).
pub fn draw(id: &str, chart: &Chart) -> Result<(), String> {
    WasmRenderer::new(WIDTH, HEIGHT)
        .render(id, chart)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// Draws `chart` into `id` once the element is in the document (views inside a `Suspend` mount
/// after their effects first run), retrying every 50 ms for up to 5 s; reports a failure to
/// `error`.
pub fn draw_when_ready(id: String, chart: Chart, error: RwSignal<Option<String>>, tries: u32) {
    let present = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(&id))
        .is_some();
    if present || tries == 0 {
        error.set(draw(&id, &chart).err());
    } else {
        set_timeout(
            move || draw_when_ready(id, chart, error, tries - 1),
            std::time::Duration::from_millis(50),
        );
    }
}

/// A series of one run, refetched whenever `version` changes; `controls` adds the EMA slider
/// and the log-scale toggle.
#[component]
pub fn SeriesChart(
    run_id: i64,
    name: String,
    version: ReadSignal<u32>,
    #[prop(optional)] controls: bool,
) -> impl IntoView {
    let id = format!(
        "chart-{}",
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    let series_name = name.clone();
    let data = LocalResource::new(move || {
        version.track();
        let name = series_name.clone();
        async move { fetch_series(run_id, &name).await }
    });
    let smoothing = RwSignal::new(if controls { 0.6 } else { 0.0 });
    let log = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let dom_id = id.clone();
    let label = name.clone();
    Effect::new(move |_| {
        let (smoothing, log) = (smoothing.get(), log.get());
        if let Some(Ok(series)) = data.get() {
            let chart = line_chart(&[(label.clone(), series)], smoothing, log);
            draw_when_ready(dom_id.clone(), chart, error, 100);
        } else if let Some(Err(e)) = data.get() {
            error.set(Some(e.to_string()));
        }
    });
    view! {
        <figure class="chart-card">
            <figcaption>{name.clone()}
                {move || data.get().and_then(|r| r.ok()).map(|s| view! {
                    <span class="muted">{format!(" ({} points)", s.total_points)}</span>
                })}
            </figcaption>
            <Show when=move || controls>
                <div class="chart-controls">
                    <label>"Smoothing "
                        <input type="range" min="0" max="0.99" step="0.01" class="ema"
                            prop:value=move || smoothing.get().to_string()
                            on:input=move |ev| smoothing.set(event_target_value(&ev).parse().unwrap_or(0.0))/>
                        {move || format!(" {:.2}", smoothing.get())}
                    </label>
                    <label><input type="checkbox" class="log-scale"
                        prop:checked=move || log.get()
                        on:change=move |ev| log.set(event_target_checked(&ev))/>" Log scale"</label>
                </div>
            </Show>
            <div id=id class="chart" style=format!("width:{WIDTH}px;height:{HEIGHT}px")></div>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </figure>
    }
}
