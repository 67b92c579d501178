//! Distillery's dashboard. Components live here; `main.rs` only mounts [`App`].
//!
//! Brief overview: [`api`] holds the fetchers, [`pages`] one module per page.

pub mod api;
pub mod components;
pub mod pages;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;

/// The whole app: a header with navigation and the routed pages.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">"Distillery"</A>
                <nav>
                    <A href="/">"Runs"</A>
                    <A href="/new">"New run"</A>
                    <A href="/runners">"Runners"</A>
                </nav>
            </header>
            <main>
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    <Route path=path!("/") view=pages::runs::RunsPage/>
                    <Route path=path!("/runs/:id") view=pages::run::RunPage/>
                    <Route path=path!("/new") view=pages::new_run::NewRunPage/>
                    <Route path=path!("/compare") view=pages::compare::ComparePage/>
                    <Route path=path!("/runners") view=pages::runners::RunnersPage/>
                </Routes>
            </main>
        </Router>
    }
}
