//! How the worker talks to the server: direct calls (register, heartbeat, claim) and reports
//! on jobs, which go through the on-disk [`Outbox`] whenever the server is unreachable and are
//! flushed later, in order, with exponential backoff and jitter.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;

use distillery_api::LEASE_HEADER;

use super::outbox::{Outbox, Pending};
use crate::io::AtomicFile;
use crate::{Error, Result};

/// First retry delay after a failure; doubled per failure up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry delay (before jitter).
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The time limit of one file upload or download (shards of teacher scores).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a call did not succeed.
#[derive(Debug)]
pub enum SendError {
    /// No answer, or a 5xx: worth retrying later.
    Unreachable(String),
    /// A 4xx: the server refused the call (409: the job's lease is gone, e.g. cancelled).
    Refused(u16, String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unreachable(m) => write!(f, "server unreachable: {m}"),
            SendError::Refused(s, m) => write!(f, "server refused ({s}): {m}"),
        }
    }
}

/// What became of a report.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    Delivered,
    /// Written to the outbox; a later flush delivers it.
    Queued,
    /// Refused with this status and message.
    Refused(u16, String),
}

/// Exponential backoff with jitter.
#[derive(Debug)]
struct Backoff {
    failures: u32,
    next_try: Instant,
}

impl Backoff {
    fn delay(failures: u32) -> Duration {
        let exp = BASE_BACKOFF
            .saturating_mul(1 << failures.min(10))
            .min(MAX_BACKOFF);
        exp.mul_f64(rand::rng().random_range(0.5..1.5))
    }

    fn fail(&mut self) -> Duration {
        let delay = Self::delay(self.failures);
        self.failures += 1;
        self.next_try = Instant::now() + delay;
        delay
    }

    fn reset(&mut self) {
        self.failures = 0;
        self.next_try = Instant::now();
    }
}

/// The server connection of one worker.
pub struct Transport {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
    outbox: Mutex<Outbox>,
    backoff: Mutex<Backoff>,
    /// Leases the server no longer honours (a report was refused with 409).
    lost: Mutex<BTreeSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Transport {
    /// Connects to `base` (e.g. `http://127.0.0.1:8480`) with an outbox in `outbox_dir`.
    pub fn new(base: &str, token: &str, outbox_dir: &Path) -> Result<Transport> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Other(format!("http client: {e}")))?;
        Ok(Transport {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            outbox: Mutex::new(Outbox::open(outbox_dir)?),
            backoff: Mutex::new(Backoff {
                failures: 0,
                next_try: Instant::now(),
            }),
            lost: Mutex::new(BTreeSet::new()),
        })
    }

    /// POSTs `body` to `/api/v1{path}` once.
    pub fn call<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> std::result::Result<reqwest::blocking::Response, SendError> {
        let sent = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send();
        answer(path, sent)
    }

    /// PUTs the file `file` as the raw body of `/api/v1{path}` once, with a job's `lease` in
    /// the [`LEASE_HEADER`] header.
    pub fn upload(
        &self,
        path: &str,
        file: &Path,
        lease: &str,
    ) -> std::result::Result<reqwest::blocking::Response, SendError> {
        let body = std::fs::File::open(file)
            .map_err(|e| SendError::Unreachable(format!("{}: {e}", file.display())))?;
        let sent = self
            .http
            .put(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .header(LEASE_HEADER, lease)
            .timeout(TRANSFER_TIMEOUT)
            .body(body)
            .send();
        answer(path, sent)
    }

    /// GETs `/api/v1{path}` once into the file `dest` (temp file + rename).
    pub fn download(&self, path: &str, dest: &Path) -> std::result::Result<(), SendError> {
        let sent = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(TRANSFER_TIMEOUT)
            .send();
        let mut resp = answer(path, sent)?;
        let local =
            |e: String| SendError::Unreachable(format!("{path} -> {}: {e}", dest.display()));
        let mut file = AtomicFile::create(dest).map_err(|e| local(e.to_string()))?;
        resp.copy_to(&mut file).map_err(|e| local(e.to_string()))?;
        file.commit().map_err(|e| local(e.to_string()))
    }

    /// Runs `attempt` until it succeeds (`Some`), is refused (the error), or `stop` is set
    /// (`None`), backing off with jitter while the server is unreachable.
    pub fn retry<T>(
        &self,
        stop: &AtomicBool,
        mut attempt: impl FnMut() -> std::result::Result<T, SendError>,
    ) -> std::result::Result<Option<T>, SendError> {
        let mut backoff = Backoff {
            failures: 0,
            next_try: Instant::now(),
        };
        while !stop.load(Ordering::Relaxed) {
            match attempt() {
                Ok(done) => return Ok(Some(done)),
                Err(e @ SendError::Refused(..)) => return Err(e),
                Err(e @ SendError::Unreachable(_)) => {
                    let delay = backoff.fail();
                    tracing::warn!("{e}; retrying in {delay:?}");
                    sleep_unless(stop, delay);
                }
            }
        }
        Ok(None)
    }

    /// Whether the server refused a report under `lease` with 409 (the run was cancelled, or
    /// the lease expired and the job went back to the queue) or 404 (the run was deleted).
    pub fn is_lost(&self, lease: &str) -> bool {
        lock(&self.lost).contains(lease)
    }

    fn note_refusal(&self, status: u16, body: &serde_json::Value) {
        if status == 409 || status == 404 {
            if let Some(lease) = body.get("lease").and_then(|l| l.as_str()) {
                lock(&self.lost).insert(lease.to_string());
            }
        }
    }

    /// Sends a report on a job, after anything buffered before it; when the server cannot be
    /// reached the report is buffered on disk instead.
    pub fn report<T: Serialize>(&self, path: &str, body: &T) -> Result<Delivery> {
        let body = serde_json::to_value(body).map_err(|e| Error::Other(e.to_string()))?;
        let mut outbox = lock(&self.outbox);
        if self.flush_locked(&mut outbox, false)? {
            match self.call(path, &body) {
                Ok(_) => {
                    lock(&self.backoff).reset();
                    return Ok(Delivery::Delivered);
                }
                Err(SendError::Refused(status, message)) => {
                    tracing::warn!(status, "report refused: {message}");
                    self.note_refusal(status, &body);
                    return Ok(Delivery::Refused(status, message));
                }
                Err(SendError::Unreachable(message)) => {
                    let delay = lock(&self.backoff).fail();
                    tracing::warn!("{message}; buffering reports, next try in {delay:?}");
                }
            }
        }
        outbox.push(&Pending {
            path: path.to_string(),
            body,
        })?;
        Ok(Delivery::Queued)
    }

    /// Delivers buffered reports in order until one fails; waits for the backoff unless
    /// `force`. Returns whether the outbox is empty.
    fn flush_locked(&self, outbox: &mut Outbox, force: bool) -> Result<bool> {
        let entries = outbox.entries()?;
        if entries.is_empty() {
            return Ok(true);
        }
        if !force && Instant::now() < lock(&self.backoff).next_try {
            return Ok(false);
        }
        for (_, file) in entries {
            let pending = Outbox::read(&file)?;
            match self.call(&pending.path, &pending.body) {
                Ok(_) => lock(&self.backoff).reset(),
                Err(SendError::Refused(status, message)) => {
                    tracing::warn!(status, "buffered report refused, dropped: {message}");
                    self.note_refusal(status, &pending.body);
                }
                Err(SendError::Unreachable(message)) => {
                    let delay = lock(&self.backoff).fail();
                    tracing::warn!("{message}; next try in {delay:?}");
                    return Ok(false);
                }
            }
            Outbox::remove(&file)?;
        }
        tracing::info!("outbox flushed");
        Ok(true)
    }

    /// Flushes the outbox, retrying with backoff, until it is empty or `stop` is set.
    pub fn flush(&self, stop: &AtomicBool) -> Result<()> {
        loop {
            let wait = {
                let mut outbox = lock(&self.outbox);
                if self.flush_locked(&mut outbox, false)? {
                    return Ok(());
                }
                lock(&self.backoff)
                    .next_try
                    .saturating_duration_since(Instant::now())
            };
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep(wait.min(Duration::from_millis(200)));
        }
    }

    /// Calls `path` until it answers (retrying with backoff while the server is unreachable) or
    /// `stop` is set; a refusal is an error.
    pub fn call_retrying<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
        stop: &AtomicBool,
    ) -> Result<Option<reqwest::blocking::Response>> {
        self.retry(stop, || self.call(path, body))
            .map_err(|e| Error::Other(e.to_string()))
    }
}

/// A response as a [`SendError`] unless it succeeded: no answer or a 5xx is worth retrying, a
/// 4xx is a refusal.
fn answer(
    path: &str,
    sent: reqwest::Result<reqwest::blocking::Response>,
) -> std::result::Result<reqwest::blocking::Response, SendError> {
    let resp = sent.map_err(|e| SendError::Unreachable(e.to_string()))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().unwrap_or_default();
    if status.is_server_error() {
        return Err(SendError::Unreachable(format!("{path}: {status}: {text}")));
    }
    Err(SendError::Refused(
        status.as_u16(),
        format!("{path}: {text}"),
    ))
}

/// Sleeps `d` in short slices, returning early once `stop` is set.
pub fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        for failures in 0..20 {
            let nominal = BASE_BACKOFF
                .saturating_mul(1 << failures.min(10))
                .min(MAX_BACKOFF);
            let d = Backoff::delay(failures);
            assert!(
                d >= nominal.mul_f64(0.5) && d < nominal.mul_f64(1.5),
                "{d:?}"
            );
        }
    }

    #[test]
    fn reports_are_buffered_while_the_server_is_down() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens on port 9 of the loopback.
        let t = Transport::new("http://127.0.0.1:9", "", dir.path()).unwrap();
        let body = serde_json::json!({"lease": "x", "points": []});
        assert_eq!(
            t.report("/jobs/1/metrics", &body).unwrap(),
            Delivery::Queued
        );
        assert_eq!(
            t.report("/jobs/1/metrics", &body).unwrap(),
            Delivery::Queued
        );
        assert_eq!(lock(&t.outbox).entries().unwrap().len(), 2);
    }
}
