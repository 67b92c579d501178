//! The runners page: registered GPU runners, how recently they were heard from and the stage
//! each is working on. Refreshed live from the event stream and every few seconds.

use distillery_api::{RunnerJob, RunnerStatus};
use leptos::prelude::*;

use crate::api::fetch_runners;
use crate::components::live::subscribe;

/// How often heartbeat ages are refreshed without an event.
const REFRESH_MS: u64 = 5000;

fn age(ms: i64) -> String {
    let s = ((js_sys::Date::now() as i64 - ms) / 1000).max(0);
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}

fn gib(bytes: i64) -> String {
    if bytes <= 0 {
        "–".into()
    } else {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    }
}

fn current_job(job: Option<RunnerJob>) -> impl IntoView {
    match job {
        None => view! { <span class="muted">"idle"</span> }.into_any(),
        Some(j) => {
            let pct = (j.progress.clamp(0.0, 1.0) * 100.0).round();
            let run = if j.run_name.is_empty() {
                format!("run {}", j.run_id)
            } else {
                format!("run {} {}", j.run_id, j.run_name)
            };
            let attempt = if j.attempt > 1 {
                format!(" (attempt {})", j.attempt)
            } else {
                String::new()
            };
            view! {
                <a href=format!("/runs/{}", j.run_id)>{run}</a>
                <span class="stage-kind">{format!(" · {}{attempt}", j.stage.as_str())}</span>
                <progress max="100" value=pct aria-label=format!("{} progress", j.stage.as_str())></progress>
                <span class="stage-info">{format!(" {pct}% {}", j.message.unwrap_or_default())}</span>
            }
            .into_any()
        }
    }
}

fn runner_row(s: RunnerStatus) -> impl IntoView {
    let r = s.runner;
    view! {
        <tr data-runner=r.name.clone()>
            <td>{r.name.clone()}</td>
            <td>{r.device.clone()}</td>
            <td class="num">{gib(r.memory_bytes)}</td>
            <td>{age(r.last_heartbeat_ms)}</td>
            <td class="current-job">{current_job(s.current_job)}</td>
            <td>{super::format_ms(r.registered_ms)}</td>
        </tr>
    }
}

/// All registered runners.
#[component]
pub fn RunnersPage() -> impl IntoView {
    let (tick, set_tick) = signal(0u32);
    let runners = LocalResource::new(move || {
        tick.track();
        fetch_runners()
    });
    subscribe("/api/v1/events", move |_| set_tick.update(|t| *t += 1));
    if let Ok(handle) = set_interval_with_handle(
        move || set_tick.update(|t| *t += 1),
        std::time::Duration::from_millis(REFRESH_MS),
    ) {
        on_cleanup(move || handle.clear());
    }
    view! {
        <section>
            <h1>"Runners"</h1>
            <Transition fallback=|| view! { <p class="loading">"Loading runners…"</p> }>
                {move || Suspend::new(async move {
                    match runners.await {
                        Err(e) => view! { <p class="error" role="alert">{format!("Could not load runners: {e}")}</p> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="empty">"No runner has registered. Start one with gpu-runner work."</p> }.into_any(),
                        Ok(list) => view! {
                            <table id="runners-table" class="data">
                                <thead><tr><th>"Name"</th><th>"Device"</th><th>"Memory"</th><th>"Heartbeat"</th>
                                    <th>"Current job"</th><th>"Registered"</th></tr></thead>
                                <tbody>{list.into_iter().map(runner_row).collect_view()}</tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
