//! One run: live stage pipeline, training curves, results, manifest and configuration.

use distillery_api::{Event, Run, RunJob, Stage};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use super::query_explorer::QueryExplorer;
use super::run_results::{Artifacts, Manifest, MetricsSection};
use crate::api::{
    cancel_run, fetch_jobs, fetch_run, fetch_runners, fetch_series_names, fetch_stages, FetchError,
};
use crate::components::chart::SeriesChart;
use crate::components::live::subscribe;
use crate::components::log_tail::LogTail;

/// The most recent live events shown in the log tail.
const LOG_LINES: usize = 30;

/// The run page.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").and_then(|s| s.parse::<i64>().ok()));
    view! {
        {move || match id.get() {
            None => view! { <p class="error" role="alert">"Bad run id."</p> }.into_any(),
            Some(id) => view! { <RunView id/> }.into_any(),
        }}
    }
}

#[component]
fn RunView(id: i64) -> impl IntoView {
    let (version, set_version) = signal(0u32);
    let (curves, set_curves) = signal(0u32);
    let (logs, set_logs) = signal(0u32);
    let stages = RwSignal::new(Vec::<Stage>::new());
    let jobs = RwSignal::new(Vec::<JobRow>::new());
    let log = RwSignal::new(Vec::<String>::new());
    let run = LocalResource::new(move || {
        version.track();
        async move {
            let run = fetch_run(id).await?;
            stages.set(fetch_stages(id).await?);
            jobs.set(job_rows(id).await?);
            Ok::<_, FetchError>(run)
        }
    });
    subscribe(&format!("/api/v1/runs/{id}/events"), move |event| {
        log.update(|l| {
            l.push(describe(&event));
            let extra = l.len().saturating_sub(LOG_LINES);
            l.drain(..extra);
        });
        match event {
            Event::Progress {
                stage_id,
                progress,
                message,
                ..
            } => stages.update(|all| {
                if let Some(s) = all.iter_mut().find(|s| s.id == stage_id) {
                    s.progress = progress;
                    s.message = message;
                }
            }),
            Event::Metrics { .. } => set_curves.update(|v| *v += 1),
            Event::Log { .. } => set_logs.update(|v| *v += 1),
            _ => set_version.update(|v| *v += 1),
        }
    });
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading run…"</p> }>
            {move || Suspend::new(async move {
                match run.await {
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    Ok(run) => view! {
                        <RunHeader run=run.clone() set_version/>
                        <section>
                            <h2>"Stages"</h2>
                            <ol class="stages">
                                {move || stages.get().into_iter().map(stage_item).collect_view()}
                            </ol>
                            <details class="log-tail">
                                <summary>"Live event log"</summary>
                                <pre id="event-log">{move || log.get().join("\n")}</pre>
                            </details>
                        </section>
                        <Jobs jobs/>
                        <LogTail id announced=logs/>
                        <Curves id version=curves/>
                        <MetricsSection id/>
                        <QueryExplorer id/>
                        <Artifacts id/>
                        <Manifest manifest=run.manifest.clone()/>
                        <Config run/>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

fn describe(event: &Event) -> String {
    let time = super::format_ms(js_sys::Date::now() as i64);
    let what = match event {
        Event::Progress {
            kind,
            progress,
            message,
            ..
        } => format!(
            "{} {:.0}% {}",
            kind.as_str(),
            progress * 100.0,
            message.clone().unwrap_or_default()
        ),
        Event::StageStatus {
            kind,
            status,
            attempt,
            ..
        } => {
            format!(
                "{} → {} (attempt {attempt})",
                kind.as_str(),
                status.as_str()
            )
        }
        Event::RunStatus { status, .. } => format!("run → {}", status.as_str()),
        Event::Metrics { last, .. } => last
            .iter()
            .map(|p| format!("{}@{}={:.4}", p.name, p.step, p.value))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.name().to_string(),
    };
    format!("{time}  {what}")
}

#[component]
fn RunHeader(run: Run, set_version: WriteSignal<u32>) -> impl IntoView {
    let id = run.id;
    let status = run.status;
    let error = RwSignal::new(None::<String>);
    let cancel = Action::new_local(move |_: &()| async move {
        match cancel_run(id).await {
            Ok(_) => set_version.update(|v| *v += 1),
            Err(e) => error.set(Some(e.to_string())),
        }
    });
    view! {
        <div class="page-head">
            <h1>{format!("Run {} {}", run.id, run.name)}</h1>
            <span class=format!("status status-{}", status.as_str())>{status.as_str()}</span>
            <Show when=crate::session::can_edit()>
                <div class="actions">
                    <Show when=move || !status.is_final()>
                        <button id="cancel-btn" on:click=move |_| { cancel.dispatch(()); }>"Cancel"</button>
                    </Show>
                    <a class="button" id="rerun-btn" href=format!("/new?from={id}")>"Re-run"</a>
                    <super::shared::ShareButton id/>
                </div>
            </Show>
        </div>
        <p class="muted">{format!("Tags: {}", if run.tags.is_empty() { "none".into() } else { run.tags.join(", ") })}
            {format!(" · created {}", super::format_ms(run.created_ms))}</p>
        {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
    }
}

fn stage_item(stage: Stage) -> impl IntoView {
    let p = stage.progress.clamp(0.0, 1.0);
    let pct = (p * 100.0).round();
    let eta = match (stage.status.as_str(), stage.started_ms) {
        ("running", Some(start)) if p > 0.0 && p < 1.0 => {
            let elapsed = js_sys::Date::now() - start as f64;
            format!("ETA {}", format_duration(elapsed * (1.0 - p) / p))
        }
        _ => String::new(),
    };
    let runner = stage
        .runner
        .clone()
        .map(|r| format!("on {r}"))
        .unwrap_or_default();
    view! {
        <li class=format!("stage status-{}", stage.status.as_str())>
            <span class="stage-kind">{stage.kind.as_str()}</span>
            <span class="stage-status">{stage.status.as_str()}</span>
            <progress max="100" value=pct aria-label=format!("{} progress", stage.kind.as_str())></progress>
            <span class="stage-info">{format!("{pct}% {eta} {runner} {}", stage.message.unwrap_or_default())}</span>
            {stage.stats.map(|s| view! { <span class="stage-stats">{s.summary()}</span> })}
        </li>
    }
}

/// One row of the jobs table: the job, its shard as "i of n", its runner's name.
#[derive(Clone)]
struct JobRow {
    job: RunJob,
    shard: String,
    runner: String,
}

/// The run's jobs with their runners' names (a runner the list no longer has shows "—").
async fn job_rows(id: i64) -> Result<Vec<JobRow>, FetchError> {
    let jobs = fetch_jobs(id).await?;
    let runners = fetch_runners().await.unwrap_or_default();
    Ok(jobs
        .into_iter()
        .map(|job| {
            let shard = job
                .shard
                .filter(|s| s.count > 1)
                .map(|s| format!("{} of {}", s.index + 1, s.count))
                .unwrap_or_else(|| "—".into());
            let runner = job
                .runner_id
                .and_then(|r| runners.iter().find(|s| s.runner.id == r))
                .map(|s| s.runner.name.clone())
                .unwrap_or_else(|| "—".into());
            JobRow { job, shard, runner }
        })
        .collect())
}

/// Which runner took which job: a sharded teacher-scoring stage has one job per shard, and
/// several runners share them.
#[component]
fn Jobs(jobs: RwSignal<Vec<JobRow>>) -> impl IntoView {
    view! {
        <details class="jobs">
            <summary>"Jobs and runners"</summary>
            <table class="data" id="run-jobs"><thead><tr>
                <th>"Job"</th><th>"Stage"</th><th>"Shard"</th><th>"Status"</th><th>"Attempt"</th><th>"Runner"</th>
            </tr></thead>
            <tbody>{move || jobs.get().into_iter().map(|row| view! {
                <tr>
                    <td class="num">{row.job.id}</td>
                    <td>{row.job.kind.as_str()}</td>
                    <td>{row.shard}</td>
                    <td>{row.job.status.as_str()}</td>
                    <td class="num">{row.job.attempt}</td>
                    <td>{row.runner}</td>
                </tr>
            }).collect_view()}</tbody></table>
        </details>
    }
}

fn format_duration(ms: f64) -> String {
    let s = (ms / 1000.0).max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[component]
fn Curves(id: i64, version: ReadSignal<u32>) -> impl IntoView {
    // Names are refetched once the first metric points arrive, not on every batch.
    let started = Memo::new(move |_| version.get() > 0);
    let names = LocalResource::new(move || {
        started.track();
        fetch_series_names(id)
    });
    view! {
        <section>
            <h2>"Training curves"</h2>
            {move || names.get().map(|r| match r {
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                Ok(names) if names.is_empty() => view! { <p class="empty">"No training metrics yet."</p> }.into_any(),
                Ok(names) => view! {
                    <div class="charts">
                        {names.into_iter().map(|name| {
                            let controls = name == "loss";
                            view! { <SeriesChart run_id=id name version controls/> }
                        }).collect_view()}
                    </div>
                }.into_any(),
            })}
        </section>
    }
}

#[component]
fn Config(run: Run) -> impl IntoView {
    view! {
        <section>
            <h2>"Configuration"</h2>
            <table class="data config">
                <tbody>{run.config.fields().into_iter().map(|(k, v)| view! {
                    <tr><th scope="row">{k}</th><td>{v}</td></tr>
                }).collect_view()}</tbody>
            </table>
        </section>
    }
}
