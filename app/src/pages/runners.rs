//! The runners page: registered GPU runners and how recently they were heard from.

use distillery_api::Runner;
use leptos::prelude::*;

use crate::api::fetch_runners;

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

fn runner_row(r: Runner) -> impl IntoView {
    view! {
        <tr>
            <td>{r.name.clone()}</td>
            <td>{r.device.clone()}</td>
            <td class="num">{gib(r.memory_bytes)}</td>
            <td>{age(r.last_heartbeat_ms)}</td>
            <td>{super::format_ms(r.registered_ms)}</td>
        </tr>
    }
}

/// All registered runners.
#[component]
pub fn RunnersPage() -> impl IntoView {
    let runners = LocalResource::new(fetch_runners);
    view! {
        <section>
            <h1>"Runners"</h1>
            <Transition fallback=|| view! { <p class="loading">"Loading runners…"</p> }>
                {move || Suspend::new(async move {
                    match runners.await {
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="empty">"No runner has registered. Start one with gpu-runner."</p> }.into_any(),
                        Ok(list) => view! {
                            <table id="runners-table" class="data">
                                <thead><tr><th>"Name"</th><th>"Device"</th><th>"Memory"</th><th>"Heartbeat"</th><th>"Registered"</th></tr></thead>
                                <tbody>{list.into_iter().map(runner_row).collect_view()}</tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
