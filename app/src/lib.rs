//! Distillery's dashboard. Components live here; `main.rs` only mounts [`App`].
//!
//! Brief overview: [`api`] holds the fetchers, [`pages`] one module per page, [`session`] who
//! is logged in (and what they may do), [`team_api`] the login, token and user fetchers.

pub mod api;
pub mod components;
pub mod pages;
pub mod session;
pub mod team_api;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;

/// The whole app: a header with navigation and the routed pages.
#[component]
pub fn App() -> impl IntoView {
    let session = session::provide_session();
    let can_edit = session::can_edit();
    view! {
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">"Distillery"</A>
                <nav>
                    <A href="/">"Runs"</A>
                    <Show when=can_edit><A href="/new">"New run"</A></Show>
                    <A href="/runners">"Runners"</A>
                    <A href="/team">"Team"</A>
                </nav>
                <span class="who" id="who">{move || match session.get() {
                    session::Session::User(u) => format!("{} ({})", u.name, u.role.as_str()),
                    _ => String::new(),
                }}</span>
            </header>
            <main>
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    <Route path=path!("/") view=pages::runs::RunsPage/>
                    <Route path=path!("/runs/:id") view=pages::run::RunPage/>
                    <Route path=path!("/new") view=pages::new_run::NewRunPage/>
                    <Route path=path!("/compare") view=pages::compare::ComparePage/>
                    <Route path=path!("/runners") view=pages::runners::RunnersPage/>
                    <Route path=path!("/login") view=pages::team::LoginPage/>
                    <Route path=path!("/team") view=pages::team::TeamPage/>
                    <Route path=path!("/share/:id") view=pages::shared::SharedRunPage/>
                </Routes>
            </main>
        </Router>
    }
}
