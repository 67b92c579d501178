//! The stage log tail: a `tracing` layer that, while the worker runs a stage, keeps the
//! runner's own log events (bounded) so the worker can send them to the server.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use distillery_api::LogLine;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Most lines kept per stage attempt; later ones are counted and reported as dropped.
pub const MAX_LINES_PER_STAGE: i64 = 2000;
/// Longest line sent, in bytes.
const MAX_LINE: usize = 1000;

#[derive(Debug, Default)]
struct Capture {
    armed: bool,
    next_seq: i64,
    dropped: u64,
    lines: Vec<LogLine>,
}

/// A `tracing` layer that captures the `gpu_runner` events of the stage being run; clone it
/// into the subscriber and into [`super::WorkerOptions::logs`].
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<Mutex<Capture>>);

impl LogCapture {
    fn with<T>(&self, f: impl FnOnce(&mut Capture) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Starts capturing for a new stage attempt, numbering lines from 0.
    pub fn arm(&self) {
        self.with(|c| {
            *c = Capture {
                armed: true,
                ..Capture::default()
            }
        });
    }

    /// Stops capturing and returns what was not taken yet, with a last line counting the
    /// lines dropped over the bound.
    pub fn disarm(&self) -> Vec<LogLine> {
        self.with(|c| {
            c.armed = false;
            if c.dropped > 0 {
                let line = LogLine {
                    seq: c.next_seq,
                    time_ms: now_ms(),
                    level: "WARN".into(),
                    message: format!("{} more log lines of this stage were not sent", c.dropped),
                };
                c.lines.push(line);
                c.next_seq += 1;
                c.dropped = 0;
            }
            std::mem::take(&mut c.lines)
        })
    }

    /// The lines captured since the last call.
    pub fn take(&self) -> Vec<LogLine> {
        self.with(|c| std::mem::take(&mut c.lines))
    }

    fn push(&self, level: &str, message: String) {
        self.with(|c| {
            if !c.armed {
                return;
            }
            if c.next_seq >= MAX_LINES_PER_STAGE {
                c.dropped += 1;
                return;
            }
            c.lines.push(LogLine {
                seq: c.next_seq,
                time_ms: now_ms(),
                level: level.into(),
                message,
            });
            c.next_seq += 1;
        });
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Formats an event's fields as `message key=value …`.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

impl<S: Subscriber> Layer<S> for LogCapture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("gpu_runner") || *meta.level() > tracing::Level::INFO {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        let mut message = line.0;
        if message.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        self.push(meta.level().as_str(), message);
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn captures_only_while_armed_and_bounds_the_lines() {
        let capture = LogCapture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before");
            capture.arm();
            tracing::info!(step = 3, "training");
            tracing::debug!("too fine");
            let lines = capture.take();
            assert_eq!(lines.len(), 1);
            assert_eq!(lines[0].message, "training step=3");
            assert_eq!((lines[0].seq, lines[0].level.as_str()), (0, "INFO"));
            for i in 0..MAX_LINES_PER_STAGE + 5 {
                tracing::warn!("line {i}");
            }
            let rest = capture.disarm();
            assert_eq!(rest.len() as i64, MAX_LINES_PER_STAGE);
            assert!(rest.last().unwrap().message.starts_with("6 more log lines"));
            tracing::info!("after");
            assert!(capture.take().is_empty());
        });
    }
}
