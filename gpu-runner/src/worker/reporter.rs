//! Streams one job's stage to the server while it runs: metric points in batches, throttled
//! progress (done/total, rate, ETA), checkpoints, the stage's log lines and, at the end, its
//! small output files as artifacts. Implements [`Observer`], so the stage code stays unaware
//! of the server.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use distillery_api::{
    ArtifactReport, Job, LogBatch, MetricBatch, MetricPoint, ProgressDetail, ProgressReport,
};
use sha2::Digest;

use super::logs::LogCapture;
use super::transport::{Delivery, Transport};
use crate::observe::Observer;
use crate::Result;

/// How often progress, metric points and log lines are sent.
const SEND_EVERY: Duration = Duration::from_secs(1);
/// A metric batch is sent early once it holds this many points.
const MAX_BATCH: usize = 500;
/// Largest output file uploaded as an artifact (stored in the database).
pub const MAX_ARTIFACT_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Default)]
struct Pending {
    points: Vec<MetricPoint>,
    progress: Option<(u64, u64, String)>,
    last_send: Option<Instant>,
    /// The first count seen and when: the rate counts only this attempt's work.
    first: Option<(u64, Instant)>,
}

/// The observer of one claimed job.
pub struct JobReporter<'a> {
    transport: &'a Transport,
    job: &'a Job,
    workdir: &'a Path,
    logs: Option<&'a LogCapture>,
    /// Set when the runner itself stops (SIGTERM).
    stop: &'a AtomicBool,
    pending: Mutex<Pending>,
    lost: AtomicBool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl<'a> JobReporter<'a> {
    pub fn new(
        transport: &'a Transport,
        job: &'a Job,
        workdir: &'a Path,
        logs: Option<&'a LogCapture>,
        stop: &'a AtomicBool,
    ) -> Self {
        JobReporter {
            transport,
            job,
            workdir,
            logs,
            stop,
            pending: Mutex::new(Pending::default()),
            lost: AtomicBool::new(false),
        }
    }

    /// Whether the server no longer honours this job's lease (cancelled or requeued).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed) || self.transport.is_lost(&self.job.lease)
    }

    /// Sends a report; returns whether the server accepted it (and, the outbox being in order,
    /// everything sent before it).
    fn send<T: serde::Serialize>(&self, what: &str, body: &T) -> bool {
        let path = format!("/jobs/{}/{what}", self.job.id);
        match self.transport.report(&path, body) {
            Ok(Delivery::Delivered) => return true,
            Ok(Delivery::Refused(409 | 404, _)) => self.lost.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(e) => tracing::warn!("report {what}: {e}"),
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends what accumulated: metric points, then log lines, then progress. Returns whether
    /// a progress report was sent and accepted.
    pub fn flush(&self, checkpoint: Option<String>) -> bool {
        let (points, progress, first) = {
            let mut p = self.lock();
            p.last_send = Some(Instant::now());
            (std::mem::take(&mut p.points), p.progress.take(), p.first)
        };
        if !points.is_empty() {
            let batch = MetricBatch {
                lease: self.job.lease.clone(),
                points,
            };
            let _ = self.send("metrics", &batch);
        }
        self.send_logs(self.logs.map(LogCapture::take).unwrap_or_default());
        if progress.is_some() || checkpoint.is_some() {
            let report = progress_report(&self.job.lease, progress, first, checkpoint);
            return self.send("progress", &report);
        }
        false
    }

    /// Sends the last log lines of the stage (and stops capturing them).
    pub fn finish_logs(&self) {
        self.send_logs(self.logs.map(LogCapture::disarm).unwrap_or_default());
    }

    fn send_logs(&self, lines: Vec<distillery_api::LogLine>) {
        for chunk in lines.chunks(1000) {
            let batch = LogBatch {
                lease: self.job.lease.clone(),
                lines: chunk.to_vec(),
            };
            let _ = self.send("logs", &batch);
        }
    }

    /// Uploads the stage's small output files (scores, triplets, summaries, training log) as
    /// artifacts stored by the server.
    pub fn upload_outputs(&self, dir: &Path) -> Result<()> {
        for (file, kind) in [
            ("scores.jsonl", "scores"),
            ("triplets.jsonl", "triplets"),
            ("summary.json", "summary"),
            ("per_query.jsonl", "per_query"),
            ("compare.json", "compare"),
            ("model/train_log.jsonl", "train_log"),
            ("report.json", "report"),
            ("manifest.json", "manifest"),
        ] {
            let path = dir.join(file);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.len() > MAX_ARTIFACT_BYTES {
                tracing::info!(
                    "{} is {} bytes, over the {MAX_ARTIFACT_BYTES}-byte artifact limit; kept on the runner only",
                    path.display(),
                    meta.len()
                );
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| crate::Error::io(&path, e))?;
            let report = ArtifactReport {
                lease: self.job.lease.clone(),
                kind: kind.into(),
                path: None,
                size_bytes: bytes.len() as i64,
                sha256: hex::encode(sha2::Sha256::digest(&bytes)),
                blob_hex: Some(hex::encode(&bytes)),
            };
            let _ = self.send("artifacts", &report);
        }
        Ok(())
    }
}

/// A progress report of `done` of `total` units, with the rate since `first` and the ETA.
fn progress_report(
    lease: &str,
    progress: Option<(u64, u64, String)>,
    first: Option<(u64, Instant)>,
    checkpoint: Option<String>,
) -> ProgressReport {
    let (done, total, unit) = progress.unwrap_or((0, 0, String::new()));
    let fraction = if total > 0 {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (done0, since) = first.unwrap_or((0, Instant::now()));
    let secs = since.elapsed().as_secs_f64().max(1e-3);
    // No rate until this attempt has counted something.
    let rate = (done > done0).then(|| (done - done0) as f64 / secs);
    let eta_s = rate.map(|r| total.saturating_sub(done) as f64 / r);
    let detail = (total > 0).then(|| ProgressDetail {
        done: done as i64,
        total: total as i64,
        unit: unit.clone(),
        rate,
        eta_s,
    });
    let message = detail.as_ref().map(|_| match (rate, eta_s) {
        (Some(r), Some(s)) => format!("{done}/{total} {unit}, {r:.1}/s, ETA {}", clock(s)),
        _ => format!("{done}/{total} {unit}"),
    });
    ProgressReport {
        lease: lease.to_string(),
        progress: fraction,
        message,
        checkpoint,
        detail,
    }
}

/// `h:mm:ss` of a number of seconds.
fn clock(secs: f64) -> String {
    let s = secs.round().max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

impl Observer for JobReporter<'_> {
    fn progress(&self, done: u64, total: u64, unit: &str) {
        let due = {
            let mut p = self.lock();
            p.progress = Some((done, total, unit.to_string()));
            p.first.get_or_insert((done, Instant::now()));
            p.last_send.is_none_or(|t| t.elapsed() >= SEND_EVERY)
        };
        if due {
            self.flush(None);
        }
    }

    fn metric(&self, name: &str, step: u64, value: f64) {
        if !value.is_finite() {
            tracing::warn!(name, step, "non-finite metric value not sent");
            return;
        }
        let full = {
            let mut p = self.lock();
            p.points.push(MetricPoint {
                name: name.into(),
                step: step as i64,
                value,
                time_ms: Some(now_ms()),
            });
            p.points.len() >= MAX_BATCH
        };
        if full {
            self.flush(None);
        }
    }

    /// Sends every point up to this update first, so a run resumed from this checkpoint
    /// loses no step of its series. Acknowledged once the server accepted the report.
    fn checkpoint(&self, _step: u64, dir: &Path) -> bool {
        let rel = dir.strip_prefix(self.workdir).unwrap_or(dir);
        self.flush(Some(rel.display().to_string()))
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.lost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_the_rate_of_this_attempt_only() {
        let first = Some((20, Instant::now() - Duration::from_secs(10)));
        let r = progress_report("l", Some((30, 40, "updates".into())), first, None);
        assert_eq!(r.progress, 0.75);
        let d = r.detail.unwrap();
        assert_eq!((d.done, d.total, d.unit.as_str()), (30, 40, "updates"));
        let rate = d.rate.unwrap();
        assert!((0.9..=1.0).contains(&rate), "{rate}");
        assert!(r
            .message
            .unwrap()
            .starts_with("30/40 updates, 1.0/s, ETA 0:00:1"));
        let once = progress_report(
            "l",
            Some((9, 9, "pairs".into())),
            Some((9, Instant::now())),
            None,
        );
        assert_eq!(once.message.as_deref(), Some("9/9 pairs"));
        assert_eq!(once.detail.unwrap().rate, None);
    }

    #[test]
    fn clock_formats_hours_minutes_seconds() {
        assert_eq!(clock(3725.4), "1:02:05");
        assert_eq!(clock(59.6), "0:01:00");
    }
}
