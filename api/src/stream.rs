//! What a runner streams while a stage runs, beyond the reports in [`crate::queue`]: progress
//! detail, the stage's log lines, and the release of a job it stops working on.

use serde::{Deserialize, Serialize};

use crate::StageKind;

/// Counted progress of a stage (`updates`, `pairs`, …), sent with a progress report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressDetail {
    pub done: i64,
    pub total: i64,
    /// What is counted, e.g. `updates` or `pairs`.
    pub unit: String,
    /// Units per second over the stage so far.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Seconds left at that rate.
    #[serde(default)]
    pub eta_s: Option<f64>,
}

/// One log line of a stage, numbered by the runner from 0 within each attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLine {
    pub seq: i64,
    pub time_ms: i64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    pub message: String,
}

/// `POST /api/v1/jobs/{id}/logs`: idempotent on (job, attempt, seq).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogBatch {
    pub lease: String,
    pub lines: Vec<LogLine>,
}

/// A stored log line, as `GET /api/v1/runs/{id}/logs` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLogLine {
    pub stage_id: i64,
    pub kind: StageKind,
    pub attempt: i64,
    pub seq: i64,
    pub time_ms: i64,
    pub level: String,
    pub message: String,
}

/// `POST /api/v1/jobs/{id}/release`: the runner stops (e.g. on SIGTERM); the job goes back to
/// the queue without counting an attempt, keeping its checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseJob {
    pub lease: String,
    /// A checkpoint to resume from (kept when absent).
    #[serde(default)]
    pub checkpoint: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}
