//! The runs table: server-side filters (status, teacher, student, dataset, tags, metric and
//! change ranges), sort and pagination, Δ columns, row selection for Compare, filtered CSV.

use distillery_api::{KeyMetrics, Run};
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::api::{fetch_runs, RunQuery};
use crate::components::pager::Pager;

const PAGE_SIZE: i64 = 50;
const STATUSES: [&str; 6] = [
    "queued",
    "running",
    "done",
    "failed",
    "cancelled",
    "skipped",
];

/// The statuses of a comma-separated `status` filter.
fn status_set(filter: &str) -> Vec<&str> {
    filter
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `filter` with `status` added (`on`) or removed, in [`STATUSES`] order; empty means any.
fn toggle_status(filter: &str, status: &str, on: bool) -> String {
    let current = status_set(filter);
    STATUSES
        .iter()
        .filter(|s| {
            if **s == status {
                on
            } else {
                current.contains(s)
            }
        })
        .copied()
        .collect::<Vec<_>>()
        .join(",")
}

/// All runs, newest first by default, filtered, sorted and paginated by the server.
#[component]
pub fn RunsPage() -> impl IntoView {
    let query = RwSignal::new(RunQuery {
        limit: PAGE_SIZE,
        sort: "created".into(),
        ..RunQuery::default()
    });
    let selected = RwSignal::new(Vec::<i64>::new());
    let runs = LocalResource::new(move || fetch_runs(query.get()));
    let navigate = use_navigate();
    let compare = move |_| {
        let ids: Vec<String> = selected.get().iter().map(i64::to_string).collect();
        navigate(
            &format!("/compare?ids={}", ids.join(",")),
            Default::default(),
        );
    };
    view! {
        <section>
            <div class="page-head">
                <h1>"Runs"</h1>
                <div class="actions">
                    <button id="compare-btn" disabled=move || !(2..=20).contains(&selected.get().len())
                        title="Select 2 to 20 runs" on:click=compare>
                        {move || format!("Compare ({})", selected.get().len())}
                    </button>
                    <a class="button" id="runs-csv" download="runs.csv" title="Every run matching the filters, in this order"
                        href=move || format!("/api/v1/export/runs.csv?{}", query.with(RunQuery::filter_query))>"Download CSV"</a>
                </div>
            </div>
            <Filters query/>
            <Transition fallback=|| view! { <p class="loading">"Loading runs…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Err(e) => view! { <p class="error" role="alert">{format!("Could not load runs: {e}")}</p> }.into_any(),
                        Ok(page) if page.items.is_empty() => view! {
                            <p class="empty">"No runs match. Clear the filters, or launch one with “New run”."</p>
                        }.into_any(),
                        Ok(page) => view! {
                            <RunsTable runs=page.items query selected/>
                            <Pager offset=Signal::derive(move || query.with(|q| q.offset))
                                set_offset=Callback::new(move |o| query.update(|q| q.offset = o))
                                page_size=PAGE_SIZE total=page.total noun="runs"/>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn text_filter(
    query: RwSignal<RunQuery>,
    label: &'static str,
    field: fn(&mut RunQuery) -> &mut String,
) -> impl IntoView {
    let id = format!("filter-{}", label.to_lowercase());
    let for_id = id.clone();
    view! {
        <label for=for_id>{label}
            <input id=id type="search" on:change=move |ev| {
                let value = event_target_value(&ev);
                query.update(|q| { *field(q) = value; q.offset = 0; });
            }/>
        </label>
    }
}

#[component]
fn Filters(query: RwSignal<RunQuery>) -> impl IntoView {
    view! {
        <form class="filters" on:submit=|ev| ev.prevent_default()>
            <fieldset class="status-filter">
                <legend>"Status"</legend>
                {STATUSES.map(|s| {
                    let id = format!("filter-status-{s}");
                    let label_for = id.clone();
                    view! {
                        <label for=label_for>
                            <input type="checkbox" id=id value=s
                                prop:checked=move || query.with(|q| status_set(&q.status).contains(&s))
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    query.update(|q| {
                                        q.status = toggle_status(&q.status, s, on);
                                        q.offset = 0;
                                    });
                                }/>
                            {s}
                        </label>
                    }
                }).collect_view()}
            </fieldset>
            {text_filter(query, "Teacher", |q| &mut q.teacher)}
            {text_filter(query, "Student", |q| &mut q.student)}
            {text_filter(query, "Dataset", |q| &mut q.dataset)}
            {text_filter(query, "Tags", |q| &mut q.tag)}
            <details class="metric-ranges">
                <summary>"Metric ranges"</summary>
                <table class="ranges">
                    <thead><tr><th>"Metric"</th><th>"Min"</th><th>"Max"</th></tr></thead>
                    <tbody>{RANGE_METRICS.map(|(key, label)| view! {
                        <tr><th scope="row">{label}</th>
                            <td>{bound_input(query, key, "min", label)}</td>
                            <td>{bound_input(query, key, "max", label)}</td></tr>
                    }).collect_view()}</tbody>
                </table>
            </details>
        </form>
    }
}

/// The key metrics and changes the list filters on: (query key, label).
const RANGE_METRICS: [(&str, &str); 6] = [
    ("map", "MAP"),
    ("mrr", "MRR@k"),
    ("ndcg", "NDCG@k"),
    ("map_delta", "Δ MAP"),
    ("mrr_delta", "Δ MRR@k"),
    ("ndcg_delta", "Δ NDCG@k"),
];

fn bound_input(
    query: RwSignal<RunQuery>,
    key: &'static str,
    end: &'static str,
    label: &'static str,
) -> impl IntoView {
    let param = format!("{key}_{end}");
    let id = format!("filter-{param}");
    view! {
        <input type="number" step="any" class="bound" id=id
            aria-label=format!("{label} {end}")
            on:change=move |ev| {
                let value = event_target_value(&ev);
                let param = param.clone();
                query.update(|q| {
                    if value.trim().is_empty() { q.bounds.remove(&param); } else { q.bounds.insert(param, value); }
                    q.offset = 0;
                });
            }/>
    }
}

fn sort_header(query: RwSignal<RunQuery>, key: &'static str, label: &'static str) -> impl IntoView {
    let sorted = move || query.with(|q| q.sort == key);
    let aria = move || match (sorted(), query.with(|q| q.ascending)) {
        (false, _) => "none",
        (true, true) => "ascending",
        (true, false) => "descending",
    };
    let arrow = move || match aria() {
        "ascending" => " ▲",
        "descending" => " ▼",
        _ => "",
    };
    view! {
        <th aria-sort=aria>
            <button class="sort" data-sort=key on:click=move |_| query.update(|q| {
                if q.sort == key { q.ascending = !q.ascending } else { q.sort = key.into(); q.ascending = false }
                q.offset = 0;
            })>{label}{arrow}</button>
        </th>
    }
}

#[component]
fn RunsTable(
    runs: Vec<Run>,
    query: RwSignal<RunQuery>,
    selected: RwSignal<Vec<i64>>,
) -> impl IntoView {
    view! {
        <table id="runs-table" class="data">
            <thead><tr>
                <th><span class="visually-hidden">"Select"</span></th>
                {sort_header(query, "created", "ID")}
                {sort_header(query, "name", "Name")}
                {sort_header(query, "status", "Status")}
                <th>"Teacher"</th><th>"Student"</th><th>"Dataset"</th><th>"Tags"</th>
                {sort_header(query, "map", "MAP")}
                {sort_header(query, "map_delta", "Δ MAP")}
                {sort_header(query, "mrr", "MRR")}
                {sort_header(query, "mrr_delta", "Δ MRR")}
                {sort_header(query, "ndcg", "NDCG")}
                {sort_header(query, "ndcg_delta", "Δ NDCG")}
                <th>"Created"</th>
            </tr></thead>
            <tbody>{runs.into_iter().map(|run| run_row(run, selected)).collect_view()}</tbody>
        </table>
    }
}

/// A metric cell with four decimals, or a dash before evaluation.
pub fn metric_cell(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.4}"))
}

fn run_row(run: Run, selected: RwSignal<Vec<i64>>) -> impl IntoView {
    let id = run.id;
    let href = format!("/runs/{id}");
    let status = run.status.as_str();
    let name = if run.name.is_empty() {
        format!("run {id}")
    } else {
        run.name.clone()
    };
    let (metrics, before) = (run.metrics, run.before);
    let delta = move |f: fn(&KeyMetrics) -> f64| {
        let d = metrics.zip(before).map(|(a, b)| f(&a) - f(&b));
        let class = match d {
            Some(d) if d > 0.0 => "num up",
            Some(d) if d < 0.0 => "num down",
            _ => "num",
        };
        view! { <td class=class>{d.map_or_else(|| "–".into(), |d| format!("{d:+.4}"))}</td> }
    };
    let teacher = if run.config.teacher_kind == "bm25" {
        "bm25".to_string()
    } else {
        run.config.teacher.clone()
    };
    view! {
        <tr class:selected=move || selected.with(|s| s.contains(&id))>
            <td><input type="checkbox" aria-label=format!("select {name}")
                prop:checked=move || selected.with(|s| s.contains(&id))
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    selected.update(|s| { s.retain(|x| *x != id); if on { s.push(id) } });
                }/></td>
            <td><a href=href.clone()>{id}</a></td>
            <td><a href=href>{name.clone()}</a></td>
            <td><span class=format!("status status-{status}")>{status}</span></td>
            <td class="path">{teacher}</td>
            <td class="path">{run.config.student.clone()}</td>
            <td class="path">{run.config.train_data.clone()}</td>
            <td>{run.tags.join(", ")}</td>
            <td class="num">{metric_cell(metrics.map(|m| m.map))}</td>
            {delta(|m| m.map)}
            <td class="num">{metric_cell(metrics.map(|m| m.mrr))}</td>
            {delta(|m| m.mrr)}
            <td class="num">{metric_cell(metrics.map(|m| m.ndcg))}</td>
            {delta(|m| m.ndcg)}
            <td>{super::format_ms(run.created_ms)}</td>
        </tr>
    }
}
