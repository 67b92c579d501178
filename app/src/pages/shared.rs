//! Share links: the button that creates one (editors), and the read-only view of a run that a
//! link opens without a login (`/share/{id}?share=TOKEN`).

use distillery_api::Event;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::query_explorer::QueryExplorer;
use super::run_results::{Artifacts, Manifest, MetricsSection};
use crate::api::{fetch_run, fetch_series_names, FetchError};
use crate::components::chart::SeriesChart;
use crate::components::live::subscribe;
use crate::session::remember_share_token;
use crate::team_api::create_share_link;

/// Creates a share link for run `id` and shows its full URL, ready to copy.
#[component]
pub fn ShareButton(id: i64) -> impl IntoView {
    let link = Action::new_local(move |_: &()| create_share_link(id));
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    view! {
        <button id="share-btn" on:click=move |_| { link.dispatch(()); }>"Share link"</button>
        {move || link.value().get().map(|r| match r {
            Ok(link) => view! {
                <input id="share-url" class="share-url" readonly aria-label="Read-only link to this run"
                    value=format!("{origin}{}", link.url)/>
            }.into_any(),
            Err(e) => view! { <span class="error" role="alert">{e.to_string()}</span> }.into_any(),
        })}
    }
}

/// What a failed fetch means on a shared page: a 401 there is a bad or revoked link.
fn share_error(e: FetchError) -> String {
    if e.0 == "login required" {
        "This share link is invalid or has been revoked.".into()
    } else {
        e.0
    }
}

/// The read-only view of one run behind a share link.
#[component]
pub fn SharedRunPage() -> impl IntoView {
    let params = use_params_map();
    if let Some(token) = use_query_map().get_untracked().get("share") {
        remember_share_token(&token);
    }
    let id = params
        .get_untracked()
        .get("id")
        .and_then(|s| s.parse::<i64>().ok());
    match id {
        None => view! { <p class="error" role="alert">"Bad run id."</p> }.into_any(),
        Some(id) => view! { <SharedRun id/> }.into_any(),
    }
}

#[component]
fn SharedRun(id: i64) -> impl IntoView {
    let (version, set_version) = signal(0u32);
    let (curves, set_curves) = signal(0u32);
    let run = LocalResource::new(move || {
        version.track();
        fetch_run(id)
    });
    // Names are refetched once the first metric points arrive, not on every batch.
    let started = Memo::new(move |_| curves.get() > 0);
    let names = LocalResource::new(move || {
        started.track();
        fetch_series_names(id)
    });
    subscribe(
        &format!("/api/v1/runs/{id}/events"),
        move |event| match event {
            Event::Metrics { .. } => set_curves.update(|v| *v += 1),
            Event::RunStatus { .. } => set_version.update(|v| *v += 1),
            _ => {}
        },
    );
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading run…"</p> }>
            {move || Suspend::new(async move {
                match run.await {
                    Err(e) => view! { <p class="error" role="alert">{share_error(e)}</p> }.into_any(),
                    Ok(run) => view! {
                        <div class="page-head">
                            <h1>{format!("Run {} {}", run.id, run.name)}</h1>
                            <span class=format!("status status-{}", run.status.as_str())>{run.status.as_str()}</span>
                            <span id="read-only" class="badge">"Shared, read-only"</span>
                        </div>
                        <p class="muted">{format!("Teacher {} · student {} · created {}",
                            run.config.teacher, run.config.student, super::format_ms(run.created_ms))}</p>
                        <section>
                            <h2>"Training curves"</h2>
                            {move || names.get().map(|r| match r {
                                Err(e) => view! { <p class="error">{share_error(e)}</p> }.into_any(),
                                Ok(names) if names.is_empty() => view! { <p class="empty">"No training metrics."</p> }.into_any(),
                                Ok(names) => view! {
                                    <div class="charts">{names.into_iter().map(|name| {
                                        let controls = name == "loss";
                                        view! { <SeriesChart run_id=id name version=curves controls/> }
                                    }).collect_view()}</div>
                                }.into_any(),
                            })}
                        </section>
                        <MetricsSection id/>
                        <QueryExplorer id/>
                        <Artifacts id/>
                        <Manifest manifest=run.manifest.clone()/>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}
