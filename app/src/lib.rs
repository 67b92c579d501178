//! Distillery's dashboard. Components live here; `main.rs` only mounts [`App`].
//!
//! Brief overview: [`api`] holds the fetchers, [`pages`] one module per page.

pub mod api;
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
                </nav>
            </header>
            <main>
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    <Route path=path!("/") view=pages::runs::RunsPage/>
                    <Route path=path!("/runs/:id") view=pages::run::RunPage/>
                </Routes>
            </main>
        </Router>
    }
}
