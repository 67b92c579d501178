//! Team access: the login form, who am I and logout, API tokens, and users (admins).

use distillery_api::{NewUser, Role, User};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::FetchError;
use crate::session::{refresh, use_session, Session};
use crate::team_api::{
    create_token, create_user, fetch_tokens, fetch_users, login, logout, revoke_token, set_role,
};

const ROLES: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

/// Where to go after logging in: the `next` parameter when it is a path on this site.
fn safe_next(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| "/".into())
}

/// Calls `on_ok` with each successful result of `action` and shows a failure in `error`.
fn on_result<I: 'static, T: Clone + 'static>(
    action: Action<I, Result<T, FetchError>>,
    error: RwSignal<Option<String>>,
    on_ok: impl Fn(T) + 'static,
) {
    Effect::new(move |_| match action.value().get() {
        Some(Ok(value)) => on_ok(value),
        Some(Err(e)) => error.set(Some(e.to_string())),
        None => {}
    });
}

fn error_line(error: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|e| view! { <p class="error" role="alert">{e}</p> })
    }
}

/// The login form; on success it returns to the page that asked for a login.
#[component]
pub fn LoginPage() -> impl IntoView {
    let session = use_session();
    let query = use_query_map();
    let navigate = use_navigate();
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let submit =
        Action::new_local(move |_: &()| login(name.get_untracked(), password.get_untracked()));
    on_result(submit, error, move |user| {
        session.set(Session::User(user));
        navigate(
            &safe_next(query.get_untracked().get("next")),
            Default::default(),
        );
    });
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        submit.dispatch(());
    };
    view! {
        <section class="narrow">
            <h1>"Log in"</h1>
            <form id="login-form" class="stack" on:submit=on_submit>
                <label>"User name"<input id="login-name" autocomplete="username" required bind:value=name/></label>
                <label>"Password"<input id="login-password" type="password" autocomplete="current-password" required bind:value=password/></label>
                <button type="submit" disabled=move || submit.pending().get()>"Log in"</button>
            </form>
            {error_line(error)}
        </section>
    }
}

/// Who am I, logout, my API tokens and (admins) the users.
#[component]
pub fn TeamPage() -> impl IntoView {
    let session = use_session();
    view! {
        <h1>"Team"</h1>
        {move || match session.get() {
            Session::Loading => view! { <p class="loading">"Loading…"</p> }.into_any(),
            Session::Anonymous => view! {
                <p class="empty">"You are not logged in. "<a href="/login?next=%2Fteam">"Log in"</a></p>
            }.into_any(),
            Session::User(user) if user.is_local() => view! {
                <p id="whoami">"Local admin: the server runs with --auth none, so there are no logins, tokens or users. Start it with --auth team to share it with a team."</p>
            }.into_any(),
            Session::User(user) => {
                let admin = user.role == Role::Admin;
                view! {
                    <WhoAmI user/>
                    <Tokens/>
                    {admin.then(|| view! { <Users/> })}
                }.into_any()
            }
        }}
    }
}

#[component]
fn WhoAmI(user: User) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let error = RwSignal::new(None::<String>);
    let out = Action::new_local(|_: &()| logout());
    on_result(out, error, move |()| {
        session.set(Session::Anonymous);
        navigate("/login", Default::default());
    });
    view! {
        <section class="page-head">
            <p id="whoami">"Logged in as "<strong>{user.name.clone()}</strong>
                <span class="muted">{format!(" ({})", user.role.as_str())}</span></p>
            <div class="actions">
                <button id="logout-btn" on:click=move |_| { out.dispatch(()); }>"Log out"</button>
            </div>
        </section>
        {error_line(error)}
    }
}

/// The caller's API tokens: create (the secret is shown once), list and revoke.
#[component]
fn Tokens() -> impl IntoView {
    let (version, set_version) = signal(0u32);
    let tokens = LocalResource::new(move || {
        version.track();
        fetch_tokens()
    });
    let name = RwSignal::new(String::new());
    let shown = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let create = Action::new_local(move |_: &()| create_token(name.get_untracked()));
    on_result(create, error, move |secret| {
        shown.set(Some(secret.token));
        name.set(String::new());
        set_version.update(|v| *v += 1);
    });
    let revoke = Action::new_local(|id: &i64| revoke_token(*id));
    on_result(revoke, error, move |()| set_version.update(|v| *v += 1));
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        create.dispatch(());
    };
    view! {
        <section>
            <h2>"API tokens"</h2>
            <p class="muted">"A token acts as you, for runners (gpu-runner work --token) and scripts (Authorization: Bearer …)."</p>
            <form id="token-form" class="inline" on:submit=on_submit>
                <label>"Name"<input id="token-name" required placeholder="e.g. gpu-box-1" bind:value=name/></label>
                <button type="submit">"Create token"</button>
            </form>
            {move || shown.get().map(|token| view! {
                <p class="notice" role="status">"Copy this token now; it will not be shown again: "
                    <code id="new-token">{token}</code></p>
            })}
            {error_line(error)}
            {move || tokens.get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                Ok(list) if list.is_empty() => view! { <p class="empty">"No tokens yet."</p> }.into_any(),
                Ok(list) => view! {
                    <table id="tokens-table" class="data">
                        <thead><tr><th>"Name"</th><th>"Created"</th><th></th></tr></thead>
                        <tbody>{list.into_iter().map(|t| view! {
                            <tr data-token=t.id>
                                <td>{t.name.clone()}</td>
                                <td>{super::format_ms(t.created_ms)}</td>
                                <td><button class="revoke" aria-label=format!("Revoke token {}", t.name)
                                    on:click=move |_| { revoke.dispatch(t.id); }>"Revoke"</button></td>
                            </tr>
                        }).collect_view()}</tbody>
                    </table>
                }.into_any(),
            })}
        </section>
    }
}

/// Users (admins only): list, change a role, create.
#[component]
fn Users() -> impl IntoView {
    let session = use_session();
    let (version, set_version) = signal(0u32);
    let users = LocalResource::new(move || {
        version.track();
        fetch_users()
    });
    let error = RwSignal::new(None::<String>);
    let change = Action::new_local(|(id, role): &(i64, Role)| set_role(*id, *role));
    Effect::new(move |_| match change.value().get() {
        Some(Ok(_)) => {
            // Demoting oneself changes what this page may show.
            refresh(session);
            set_version.update(|v| *v += 1);
        }
        Some(Err(e)) => {
            error.set(Some(e.to_string()));
            set_version.update(|v| *v += 1);
        }
        None => {}
    });
    view! {
        <section>
            <h2>"Users"</h2>
            {error_line(error)}
            {move || users.get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                Ok(list) => view! {
                    <table id="users-table" class="data">
                        <thead><tr><th>"Name"</th><th>"Role"</th><th>"Created"</th></tr></thead>
                        <tbody>{list.into_iter().map(|u| user_row(u, change, error)).collect_view()}</tbody>
                    </table>
                }.into_any(),
            })}
            <NewUserForm on_created=move || set_version.update(|v| *v += 1)/>
        </section>
    }
}

fn user_row(
    user: User,
    change: Action<(i64, Role), Result<User, FetchError>>,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let id = user.id;
    let on_change = move |ev: leptos::ev::Event| {
        error.set(None);
        if let Some(role) = Role::parse(&event_target_value(&ev)) {
            change.dispatch((id, role));
        }
    };
    view! {
        <tr data-user=user.name.clone()>
            <td>{user.name.clone()}</td>
            <td><select class="role" aria-label=format!("Role of {}", user.name) on:change=on_change>
                {ROLES.into_iter().map(|r| view! {
                    <option value=r.as_str() selected=r == user.role>{r.as_str()}</option>
                }).collect_view()}
            </select></td>
            <td>{super::format_ms(user.created_ms)}</td>
        </tr>
    }
}

#[component]
fn NewUserForm(on_created: impl Fn() + Copy + 'static) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let role = RwSignal::new("viewer".to_string());
    let error = RwSignal::new(None::<String>);
    let create = Action::new_local(move |_: &()| {
        create_user(NewUser {
            name: name.get_untracked(),
            password: password.get_untracked(),
            role: Role::parse(&role.get_untracked()).unwrap_or(Role::Viewer),
        })
    });
    on_result(create, error, move |_| {
        name.set(String::new());
        password.set(String::new());
        on_created();
    });
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        error.set(None);
        create.dispatch(());
    };
    view! {
        <h3>"Add a user"</h3>
        <form id="user-form" class="inline" on:submit=on_submit>
            <label>"Name"<input id="user-name" required bind:value=name/></label>
            <label>"Password (8+ characters)"<input id="user-password" type="password" autocomplete="new-password" required minlength="8" bind:value=password/></label>
            <label>"Role"<select id="user-role" bind:value=role>
                {ROLES.into_iter().map(|r| view! { <option value=r.as_str()>{r.as_str()}</option> }).collect_view()}
            </select></label>
            <button type="submit">"Add user"</button>
        </form>
        {error_line(error)}
    }
}
