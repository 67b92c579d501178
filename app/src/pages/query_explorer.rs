//! The per-query diff explorer of a run: queries sorted by the change of a metric (most
//! improved or most regressed first, paged by the server), each expandable to its positives and
//! the student's top 10 before and after training, side by side, with passage text, student and
//! teacher scores and relevance marks.

use distillery_api::{PassageDetail, QueryDetail, QueryDiff, QueryScores};
use leptos::prelude::*;

use crate::api::{fetch_query_detail, fetch_query_diffs, QueryOrder};
use crate::components::pager::Pager;

/// Queries per page.
const PAGE_SIZE: i64 = 25;

fn pick(s: &QueryScores, metric: &str) -> f64 {
    match metric {
        "ap" => s.ap,
        "rr" => s.rr,
        _ => s.ndcg,
    }
}

fn delta_class(d: f64) -> &'static str {
    if d > 0.0 {
        "num up"
    } else if d < 0.0 {
        "num down"
    } else {
        "num"
    }
}

/// Queries sorted by the change of a metric, each expandable to its passages.
#[component]
pub fn QueryExplorer(id: i64) -> impl IntoView {
    let order = RwSignal::new(QueryOrder {
        regressed_first: false,
        metric: "ndcg".into(),
        limit: PAGE_SIZE,
        offset: 0,
    });
    let page = LocalResource::new(move || fetch_query_diffs(id, order.get()));
    let set_regressed = move |on: bool| {
        order.update(|o| {
            o.regressed_first = on;
            o.offset = 0;
        })
    };
    view! {
        <section>
            <div class="page-head">
                <h2>"Per-query changes"</h2>
                <div class="actions">
                    <div role="group" aria-label="Order" class="actions">
                        <button id="queries-improved" aria-pressed=move || (!order.with(|o| o.regressed_first)).to_string()
                            on:click=move |_| set_regressed(false)>"Most improved"</button>
                        <button id="queries-regressed" aria-pressed=move || order.with(|o| o.regressed_first).to_string()
                            on:click=move |_| set_regressed(true)>"Most regressed"</button>
                    </div>
                    <label for="queries-metric">"Δ of "
                        <select id="queries-metric" on:change=move |ev| {
                            let metric = event_target_value(&ev);
                            order.update(|o| { o.metric = metric; o.offset = 0; });
                        }>
                            <option value="ndcg">"NDCG@k"</option>
                            <option value="ap">"AP"</option>
                            <option value="rr">"RR@k"</option>
                        </select>
                    </label>
                    <a class="button" href=format!("/api/v1/runs/{id}/export/queries.csv") download=format!("run-{id}-queries.csv")>"Download CSV"</a>
                </div>
            </div>
            {move || page.get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{format!("Could not load the queries: {e}")}</p> }.into_any(),
                Ok(p) if p.items.is_empty() => view! {
                    <p class="empty">"No per-query results yet: they arrive when the compare stage finishes."</p>
                }.into_any(),
                Ok(p) => {
                    let metric = order.with_untracked(|o| o.metric.clone());
                    view! {
                        <table id="queries-table" class="data">
                            <thead><tr>
                                <th>"Query"</th><th>"Before"</th><th>"After"</th><th>"Δ"</th>
                                <th>"Teacher"</th><th><span class="visually-hidden">"Passages"</span></th>
                            </tr></thead>
                            <tbody>{p.items.into_iter().map(|q| view! { <QueryRow run_id=id diff=q metric=metric.clone()/> }).collect_view()}</tbody>
                        </table>
                        <Pager offset=Signal::derive(move || order.with(|o| o.offset))
                            set_offset=Callback::new(move |o| order.update(|q| q.offset = o))
                            page_size=PAGE_SIZE total=p.total noun="queries"/>
                    }.into_any()
                }
            })}
        </section>
    }
}

/// One query's row, and below it, once expanded, its passages.
#[component]
fn QueryRow(run_id: i64, diff: QueryDiff, metric: String) -> impl IntoView {
    let open = RwSignal::new(false);
    let label = if diff.query.is_empty() {
        diff.query_id.clone()
    } else {
        diff.query.clone()
    };
    let detail_id = format!("query-detail-{}", diff.query_id);
    let controls = detail_id.clone();
    let query_id = diff.query_id.clone();
    let hidden_label = format!(" of {label}");
    let teacher = diff
        .teacher
        .map_or_else(|| "–".into(), |t| format!("{:.4}", pick(&t, &metric)));
    view! {
        <tr data-query=diff.query_id.clone()>
            <td title=format!("query {}", diff.query_id)>{label}</td>
            <td class="num">{format!("{:.4}", pick(&diff.before, &metric))}</td>
            <td class="num">{format!("{:.4}", pick(&diff.after, &metric))}</td>
            <td class=delta_class(diff.delta)>{format!("{:+.4}", diff.delta)}</td>
            <td class="num">{teacher}</td>
            <td>
                <button class="expand" aria-expanded=move || open.get().to_string() aria-controls=controls
                    disabled=!diff.has_detail
                    title=if diff.has_detail { "Show the passages" } else { "No passages were recorded for this query" }
                    on:click=move |_| open.update(|o| *o = !*o)>
                    {move || if open.get() { "Hide" } else { "Passages" }}
                    <span class="visually-hidden">{hidden_label}</span>
                </button>
            </td>
        </tr>
        <Show when=move || open.get()>
            <tr class="query-detail-row" id=detail_id.clone()>
                <td colspan="6"><QueryDetailView run_id query_id=query_id.clone()/></td>
            </tr>
        </Show>
    }
}

#[component]
fn QueryDetailView(run_id: i64, query_id: String) -> impl IntoView {
    let detail = LocalResource::new(move || fetch_query_detail(run_id, query_id.clone()));
    view! {
        {move || match detail.get() {
            None => view! { <p class="loading">"Loading passages…"</p> }.into_any(),
            Some(Err(e)) => view! { <p class="error" role="alert">{format!("Could not load the passages: {e}")}</p> }.into_any(),
            Some(Ok(d)) => detail_body(d).into_any(),
        }}
    }
}

fn scores_line(name: &str, s: &QueryScores) -> String {
    format!(
        "{name}: AP {:.4} · RR {:.4} · NDCG {:.4}",
        s.ap, s.rr, s.ndcg
    )
}

fn detail_body(d: QueryDetail) -> impl IntoView {
    let positives: Vec<PassageDetail> = d.passages.iter().filter(|p| p.relevant).cloned().collect();
    let pick_list = |list: &[u32]| -> Vec<PassageDetail> {
        list.iter()
            .filter_map(|&i| d.passages.get(i as usize).cloned())
            .collect()
    };
    let (before, after) = (pick_list(&d.top_before), pick_list(&d.top_after));
    let shown = positives.len();
    view! {
        <div class="query-detail">
            <p><strong>{d.query.clone()}</strong>
                <span class="muted">{format!(" · {} positives, {} negatives", d.n_positive, d.n_negative)}</span></p>
            <p class="muted">{scores_line("Before", &d.before)}<br/>{scores_line("After", &d.after)}<br/>{scores_line("Teacher", &d.teacher)}</p>
            <h3>{if shown < d.n_positive as usize { format!("Positives (first {shown})") } else { "Positives".to_string() }}</h3>
            <ul class="positives">
                {positives.into_iter().map(|p| view! {
                    <li>{p.text.clone()}
                        <span class="muted">{format!(" · rank {} → {} · teacher {:.3}", p.rank_before, p.rank_after, p.teacher)}</span></li>
                }).collect_view()}
            </ul>
            <div class="top-lists">
                {top_table("Top 10 before training", "before", before)}
                {top_table("Top 10 after training", "after", after)}
            </div>
        </div>
    }
}

fn top_table(
    caption: &'static str,
    side: &'static str,
    passages: Vec<PassageDetail>,
) -> impl IntoView {
    view! {
        <table class=format!("data top-list top-{side}")>
            <caption>{caption}</caption>
            <thead><tr><th>"#"</th><th>"Passage"</th><th>"Student"</th><th>"Teacher"</th><th>"Relevant"</th></tr></thead>
            <tbody>{passages.into_iter().map(|p| {
                let (rank, score) = if side == "before" { (p.rank_before, p.before) } else { (p.rank_after, p.after) };
                view! {
                    <tr class:relevant=p.relevant>
                        <td class="num">{rank}</td>
                        <td class="passage">{p.text.clone()}</td>
                        <td class="num">{format!("{score:.3}")}</td>
                        <td class="num">{format!("{:.3}", p.teacher)}</td>
                        <td>{if p.relevant { view! { <span class="relevant-mark" aria-label="relevant">"✓"</span> }.into_any() }
                             else { view! { <span class="muted" aria-label="not relevant">"–"</span> }.into_any() }}</td>
                    </tr>
                }
            }).collect_view()}</tbody>
        </table>
    }
}
