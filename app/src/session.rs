//! Who is using the dashboard: the logged-in user (or the local admin under `--auth none`),
//! shared through a context so pages can hide what the user may not do.
//!
//! The server is the authority: it answers 401 without a login and 403 for a role that is too
//! low. The app follows it: a 401 from any fetch sends the user to the login page
//! ([`login_required`]), and write controls are shown only when [`can_edit`] says so.

use distillery_api::{Role, User};
use gloo_net::http::Request;
use leptos::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

/// What the app knows about the current user.
#[derive(Debug, Clone, PartialEq)]
pub enum Session {
    /// `GET /auth/me` has not answered yet.
    Loading,
    /// No login (or only a share link).
    Anonymous,
    User(User),
}

impl Session {
    pub fn role(&self) -> Option<Role> {
        match self {
            Session::User(u) => Some(u.role),
            _ => None,
        }
    }
}

/// The session signal, provided by [`provide_session`] at the app's root.
pub fn use_session() -> RwSignal<Session> {
    use_context::<RwSignal<Session>>().unwrap_or_else(|| RwSignal::new(Session::Anonymous))
}

/// A reactive test of whether the current user may launch, cancel, re-run and share runs
/// (for `<Show when=can_edit()>`). Call it while building a component.
pub fn can_edit() -> impl Fn() -> bool + Copy + Send + Sync + 'static {
    let session = use_session();
    move || session.with(|s| s.role().is_some_and(|r| r >= Role::Editor))
}

/// Provides the session context and asks the server who is calling.
pub fn provide_session() -> RwSignal<Session> {
    let session = RwSignal::new(Session::Loading);
    provide_context(session);
    refresh(session);
    session
}

/// Re-asks the server who is calling (after login or logout). A 401 or 403 (a share link has
/// no user) means anonymous; this fetch never redirects.
pub fn refresh(session: RwSignal<Session>) {
    leptos::task::spawn_local(async move {
        let me = match Request::get("/api/v1/auth/me").send().await {
            Ok(resp) if resp.ok() => resp.json::<User>().await.ok(),
            _ => None,
        };
        session.set(me.map_or(Session::Anonymous, Session::User));
    });
}

/// Sends the browser to the login page, remembering where it was. Called on any 401. A share
/// link page stays where it is (its error says the link is invalid).
pub fn login_required() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let location = window.location();
    let path = location.pathname().unwrap_or_default();
    if path == "/login" || path.starts_with("/share/") {
        return;
    }
    let here = format!("{path}{}", location.search().unwrap_or_default());
    let next: String = js_sys::encode_uri_component(&here).into();
    navigate_outside_router(&format!("/login?next={next}"));
}

/// Client-side navigation from code that has no router context (plain fetchers): pushes the
/// URL and fires `popstate`, which the router follows without reloading the page.
pub fn navigate_outside_router(url: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    if let Ok(history) = window.history() {
        let _ = history.push_state_with_url(&JsValue::NULL, "", Some(url));
        if let Ok(event) = web_sys::PopStateEvent::new("popstate") {
            let _ = window.dispatch_event(&event);
        }
    }
}

/// Remembers a share-link token in a browser-session cookie, so every request of the shared
/// run's page (fetches, CSV downloads, the event stream) carries it.
pub fn remember_share_token(token: &str) {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.dyn_into::<web_sys::HtmlDocument>().ok());
    if let Some(document) = document {
        let token: String = js_sys::encode_uri_component(token).into();
        let _ = document.set_cookie(&format!(
            "distillery_share={token}; Path=/; SameSite=Strict"
        ));
    }
}
