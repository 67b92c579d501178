//! The runs table: server-side filters, sort and pagination, row selection for Compare.

use distillery_api::Run;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::api::{fetch_runs, RunQuery};

const PAGE_SIZE: i64 = 50;
const STATUSES: [&str; 6] = [
    "queued",
    "running",
    "done",
    "failed",
    "cancelled",
    "skipped",
];

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
                    <a class="button" href="/api/v1/export/runs.csv" download="runs.csv">"Download CSV"</a>
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
                            <Pager query total=page.total/>
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
            <label for="filter-status">"Status"
                <select id="filter-status" on:change=move |ev| {
                    let value = event_target_value(&ev);
                    query.update(|q| { q.status = value; q.offset = 0; });
                }>
                    <option value="">"any"</option>
                    {STATUSES.map(|s| view! { <option value=s>{s}</option> }).collect_view()}
                </select>
            </label>
            {text_filter(query, "Teacher", |q| &mut q.teacher)}
            {text_filter(query, "Student", |q| &mut q.student)}
            {text_filter(query, "Dataset", |q| &mut q.dataset)}
            {text_filter(query, "Tag", |q| &mut q.tag)}
        </form>
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
                {sort_header(query, "mrr", "MRR")}
                {sort_header(query, "ndcg", "NDCG")}
                <th>"Created"</th>
            </tr></thead>
            <tbody>{runs.into_iter().map(|run| run_row(run, selected)).collect_view()}</tbody>
        </table>
    }
}

#[component]
fn Pager(query: RwSignal<RunQuery>, total: i64) -> impl IntoView {
    let offset = move || query.with(|q| q.offset);
    view! {
        <div class="pager">
            <button disabled=move || offset() == 0
                on:click=move |_| query.update(|q| q.offset = (q.offset - PAGE_SIZE).max(0))>"Previous"</button>
            <span>{move || format!("{}–{} of {}", offset() + 1, (offset() + PAGE_SIZE).min(total), total)}</span>
            <button disabled=move || offset() + PAGE_SIZE >= total
                on:click=move |_| query.update(|q| q.offset += PAGE_SIZE)>"Next"</button>
        </div>
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
    let metrics = run.metrics;
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
            <td>{run.config.teacher_kind.clone()}</td>
            <td class="path">{run.config.student.clone()}</td>
            <td class="path">{run.config.train_data.clone()}</td>
            <td>{run.tags.join(", ")}</td>
            <td class="num">{metric_cell(metrics.map(|m| m.map))}</td>
            <td class="num">{metric_cell(metrics.map(|m| m.mrr))}</td>
            <td class="num">{metric_cell(metrics.map(|m| m.ndcg))}</td>
            <td>{super::format_ms(run.created_ms)}</td>
        </tr>
    }
}
