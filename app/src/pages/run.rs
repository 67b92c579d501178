//! One run: its configuration and stage pipeline.

use distillery_api::Stage;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::{fetch_run, fetch_stages};

/// The run page.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<i64>().ok());
    let run = LocalResource::new(move || async move {
        let id = id().ok_or_else(|| crate::api::FetchError("bad run id".into()))?;
        let run = fetch_run(id).await?;
        let stages = fetch_stages(id).await?;
        Ok::<_, crate::api::FetchError>((run, stages))
    });
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading run…"</p> }>
            {move || Suspend::new(async move {
                match run.await {
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    Ok((run, stages)) => view! {
                        <section>
                            <h1>{format!("Run {} {}", run.id, run.name)}</h1>
                            <p>"Status: " <span class=format!("status status-{}", run.status.as_str())>{run.status.as_str()}</span></p>
                            <h2>"Stages"</h2>
                            <ol class="stages">{stages.into_iter().map(stage_item).collect_view()}</ol>
                            <h2>"Configuration"</h2>
                            <table class="data config">
                                <tbody>{run.config.fields().into_iter().map(|(k, v)| view! {
                                    <tr><th scope="row">{k}</th><td>{v}</td></tr>
                                }).collect_view()}</tbody>
                            </table>
                        </section>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

fn stage_item(stage: Stage) -> impl IntoView {
    let pct = (stage.progress.clamp(0.0, 1.0) * 100.0).round();
    view! {
        <li class=format!("stage status-{}", stage.status.as_str())>
            <span class="stage-kind">{stage.kind.as_str()}</span>
            <span class="stage-status">{stage.status.as_str()}</span>
            <progress max="100" value=pct></progress>
        </li>
    }
}
