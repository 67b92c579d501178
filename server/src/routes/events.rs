//! Server-sent events: every run's changes, or one run's.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use distillery_api::Event;
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::ApiPath;
use crate::error::AppError;
use crate::AppState;

/// Streams the events `keep` accepts until the client goes away.
fn stream_events(
    state: &AppState,
    keep: impl Fn(&Event) -> bool + Send + 'static,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = state.store.events().subscribe();
    let events = stream::unfold((rx, keep), |(mut rx, keep)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if keep(&e) => {
                    let data = serde_json::to_string(&e).unwrap_or_default();
                    let sse = SseEvent::default().event(e.name()).data(data);
                    return Some((Ok(sse), (rx, keep)));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    let sse = SseEvent::default().event("lagged").data(n.to_string());
                    return Some((Ok(sse), (rx, keep)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// `GET /events`: the run list's stream (everything but metric points).
pub async fn events_all(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    stream_events(&state, Event::for_run_list)
}

/// `GET /runs/{id}/events`: one run's stream.
pub async fn events_run(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, AppError> {
    state.store.get_run(id).await?;
    Ok(stream_events(&state, move |e| e.run_id() == id))
}
