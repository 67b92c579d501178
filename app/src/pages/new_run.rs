//! The new-run form: every hyper-parameter with the reference defaults (or a run's values for
//! Re-run), with the server's validation message shown next to the offending field.

use distillery_api::{NewRun, RunConfig};
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use serde_json::{Map, Value};

use crate::api::{create_run, fetch_run, fetch_runners, Rejection};

/// Builds a config from the form's text values, typed like the reference defaults.
pub fn config_from_form(values: &[(String, String)]) -> Result<RunConfig, Rejection> {
    let defaults = serde_json::to_value(RunConfig::default()).unwrap_or(Value::Null);
    let mut out = Map::new();
    for (key, text) in values {
        let typed = match defaults.get(key) {
            Some(Value::Bool(_)) => Value::Bool(text == "true"),
            Some(Value::Number(_)) => {
                let n: f64 = text.trim().parse().map_err(|_| Rejection {
                    error: format!("{text:?} is not a number"),
                    field: Some(key.clone()),
                })?;
                serde_json::to_value(n).unwrap_or(Value::Null)
            }
            _ => Value::String(text.clone()),
        };
        // Integers go over the wire as integers.
        let typed = match (&typed, defaults.get(key)) {
            (Value::Number(n), Some(Value::Number(d))) if d.is_u64() || d.is_i64() => n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| Value::from(f as u64))
                .ok_or_else(|| Rejection {
                    error: "must be a whole number".into(),
                    field: Some(key.clone()),
                })?,
            _ => typed,
        };
        out.insert(key.clone(), typed);
    }
    serde_json::from_value(Value::Object(out)).map_err(|e| Rejection {
        error: e.to_string(),
        field: None,
    })
}

fn form_values(config: &RunConfig) -> Vec<(String, String)> {
    let Value::Object(map) = serde_json::to_value(config).unwrap_or(Value::Null) else {
        return Vec::new();
    };
    map.into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect()
}

/// The page at `/new`, or `/new?from=ID` to re-run a run with its configuration.
#[component]
pub fn NewRunPage() -> impl IntoView {
    let query = use_query_map();
    let source = LocalResource::new(move || {
        let from = query.read().get("from").and_then(|s| s.parse::<i64>().ok());
        async move {
            match from {
                Some(id) => fetch_run(id)
                    .await
                    .map(|r| (format!("{} (re-run)", r.name), r.config, r.tags)),
                None => Ok((String::new(), RunConfig::default(), Vec::new())),
            }
        }
    });
    view! {
        <section>
            <h1>"New run"</h1>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match source.await {
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        Ok((name, config, tags)) => view! { <RunForm name config tags/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The datalist a form field offers choices from, if any: model paths for the teacher and the
/// student, data files for the datasets.
fn choices_for(key: &str) -> Option<&'static str> {
    match key {
        "teacher" | "student" => Some("catalog-models"),
        "train_data" | "test_data" => Some("catalog-datasets"),
        _ => None,
    }
}

/// The model directories and data files the runners reported (`gpu-runner work --catalog`),
/// as two datalists; each option names the runners that have it.
#[component]
fn RunnerChoices() -> impl IntoView {
    let runners = LocalResource::new(fetch_runners);
    let options = move |pick: fn(&distillery_api::RunnerCatalog) -> &Vec<String>| {
        let mut found: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        if let Some(Ok(list)) = runners.get() {
            for r in list {
                for path in pick(&r.runner.catalog) {
                    found
                        .entry(path.clone())
                        .or_default()
                        .push(r.runner.name.clone());
                }
            }
        }
        found
            .into_iter()
            .map(|(path, names)| view! { <option value=path label=names.join(", ")/> })
            .collect_view()
    };
    view! {
        <datalist id="catalog-models">{move || options(|c| &c.models)}</datalist>
        <datalist id="catalog-datasets">{move || options(|c| &c.datasets)}</datalist>
    }
}

#[component]
fn RunForm(name: String, config: RunConfig, tags: Vec<String>) -> impl IntoView {
    let fields: Vec<(String, RwSignal<String>)> = form_values(&config)
        .into_iter()
        .map(|(k, v)| (k, RwSignal::new(v)))
        .collect();
    let name = RwSignal::new(name);
    let tags = RwSignal::new(tags.join(", "));
    let rejection = RwSignal::new(None::<Rejection>);
    let navigate = use_navigate();
    let values = fields.clone();
    let submit = Action::new_local(move |_: &()| {
        let values: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| (k.clone(), v.get_untracked()))
            .collect();
        let navigate = navigate.clone();
        async move {
            let config = config_from_form(&values)?;
            let new = NewRun {
                experiment_id: None,
                name: name.get_untracked(),
                config,
                tags: tags
                    .get_untracked()
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect(),
            };
            let run = create_run(&new).await?;
            navigate(&format!("/runs/{}", run.id), Default::default());
            Ok::<(), Rejection>(())
        }
    });
    Effect::new(move |_| {
        if let Some(result) = submit.value().get() {
            rejection.set(result.err());
        }
    });
    let field_error = move |key: &str| {
        rejection.with(|r| {
            r.as_ref()
                .filter(|r| r.field.as_deref() == Some(key))
                .map(|r| r.error.clone())
        })
    };
    view! {
        <form id="new-run" class="run-form" on:submit=move |ev| { ev.prevent_default(); submit.dispatch(()); }>
            <RunnerChoices/>
            <label for="run-name">"Name"<input id="run-name" prop:value=move || name.get()
                on:input=move |ev| name.set(event_target_value(&ev))/></label>
            <label for="run-tags">"Tags (comma-separated)"<input id="run-tags" prop:value=move || tags.get()
                on:input=move |ev| tags.set(event_target_value(&ev))/></label>
            {fields.into_iter().map(|(key, value)| {
                let id = format!("cfg-{key}");
                let for_id = id.clone();
                let k = key.clone();
                view! {
                    <label for=for_id>{key.clone()}
                        <input id=id name=key.clone() list=choices_for(&key) prop:value=move || value.get()
                            aria-invalid=move || field_error(&k).is_some().to_string()
                            on:input=move |ev| value.set(event_target_value(&ev))/>
                        {let k = key.clone(); move || field_error(&k).map(|e| view! { <span class="field-error" role="alert">{e}</span> })}
                    </label>
                }
            }).collect_view()}
            {move || rejection.get().filter(|r| r.field.is_none()).map(|r| view! { <p class="error" role="alert">{r.error}</p> })}
            <div class="actions"><button type="submit" disabled=move || submit.pending().get()>"Queue run"</button></div>
        </form>
    }
}
