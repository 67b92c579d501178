//! The runs table.

use distillery_api::Run;
use leptos::prelude::*;

use crate::api::fetch_runs;

const PAGE_SIZE: i64 = 50;

/// All runs, newest first, paginated server-side.
#[component]
pub fn RunsPage() -> impl IntoView {
    let (offset, set_offset) = signal(0i64);
    let runs = LocalResource::new(move || fetch_runs(PAGE_SIZE, offset.get()));
    view! {
        <section>
            <h1>"Runs"</h1>
            <Transition fallback=|| view! { <p class="loading">"Loading runs…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Err(e) => view! { <p class="error" role="alert">{format!("Could not load runs: {e}")}</p> }.into_any(),
                        Ok(page) if page.items.is_empty() && offset.get_untracked() == 0 => view! {
                            <p class="empty">"No runs yet. Launch one with the demo (cargo xtask demo) or the API."</p>
                        }.into_any(),
                        Ok(page) => {
                            let total = page.total;
                            view! {
                                <table id="runs-table" class="data">
                                    <thead><tr>
                                        <th>"ID"</th><th>"Name"</th><th>"Status"</th><th>"Teacher"</th>
                                        <th>"Student"</th><th>"Created"</th>
                                    </tr></thead>
                                    <tbody>{page.items.into_iter().map(run_row).collect_view()}</tbody>
                                </table>
                                <div class="pager">
                                    <button disabled=move || offset.get() == 0
                                        on:click=move |_| set_offset.update(|o| *o = (*o - PAGE_SIZE).max(0))>"Previous"</button>
                                    <span>{move || format!("{}–{} of {}", offset.get() + 1, (offset.get() + PAGE_SIZE).min(total), total)}</span>
                                    <button disabled=move || offset.get() + PAGE_SIZE >= total
                                        on:click=move |_| set_offset.update(|o| *o += PAGE_SIZE)>"Next"</button>
                                </div>
                            }.into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

fn run_row(run: Run) -> impl IntoView {
    let href = format!("/runs/{}", run.id);
    let status = run.status.as_str();
    view! {
        <tr>
            <td><a href=href.clone()>{run.id}</a></td>
            <td><a href=href>{if run.name.is_empty() { format!("run {}", run.id) } else { run.name.clone() }}</a></td>
            <td><span class=format!("status status-{status}")>{status}</span></td>
            <td>{run.config.teacher_kind.clone()}</td>
            <td class="path">{run.config.student.clone()}</td>
            <td>{super::format_ms(run.created_ms)}</td>
        </tr>
    }
}
