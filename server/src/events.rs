//! Live updates: one `tokio::sync::broadcast` channel of [`Event`]s, served as SSE.
//!
//! Publishing never blocks and never fails: with no subscriber the event is dropped, and a
//! subscriber that falls more than [`CAPACITY`] events behind skips the oldest ones.

use distillery_api::Event;
use tokio::sync::broadcast;

/// How many events a slow subscriber may lag before it skips some.
pub const CAPACITY: usize = 1024;

/// A cheap, cloneable handle to the event channel.
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl Events {
    pub fn new() -> Events {
        let (sender, _) = broadcast::channel(CAPACITY);
        Events { sender }
    }

    /// Sends an event to every current subscriber.
    pub fn publish(&self, event: Event) {
        // An error only means nobody is listening.
        let _ = self.sender.send(event);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
