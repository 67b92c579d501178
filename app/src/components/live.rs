//! Live updates: a run's server-sent event stream, delivered as parsed [`Event`]s.

use distillery_api::Event;
use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{EventSource, MessageEvent};

const EVENT_NAMES: [&str; 6] = [
    "run_created",
    "run_status",
    "run_deleted",
    "stage_status",
    "progress",
    "metrics",
];

/// Subscribes to `url` (an SSE endpoint) for the lifetime of the calling component and calls
/// `on_event` for each event. The stream reconnects by itself (EventSource does).
pub fn subscribe(url: &str, on_event: impl Fn(Event) + 'static) {
    let Ok(source) = EventSource::new(url) else {
        return;
    };
    let handler = Closure::<dyn FnMut(MessageEvent)>::new(move |msg: MessageEvent| {
        if let Some(text) = msg.data().as_string() {
            if let Ok(event) = serde_json::from_str::<Event>(&text) {
                on_event(event);
            }
        }
    });
    for name in EVENT_NAMES {
        let _ = source.add_event_listener_with_callback(name, handler.as_ref().unchecked_ref());
    }
    let held = StoredValue::new_local(Some((source, handler)));
    on_cleanup(move || {
        held.update_value(|h| {
            if let Some((source, _handler)) = h.take() {
                source.close();
            }
        });
    });
}
