//! What the runners page shows: each runner with the job it is working on.

use serde::{Deserialize, Serialize};

use crate::{Runner, StageKind};

/// The stage a runner holds a lease on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerJob {
    pub job_id: i64,
    pub run_id: i64,
    pub run_name: String,
    pub stage: StageKind,
    /// Fraction of the stage done, in `[0, 1]`.
    pub progress: f64,
    #[serde(default)]
    pub message: Option<String>,
    /// 1 on the first claim, more after requeues.
    pub attempt: i64,
}

/// `GET /api/v1/runners`: a [`Runner`] and its current job (none when idle).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerStatus {
    #[serde(flatten)]
    pub runner: Runner,
    #[serde(default)]
    pub current_job: Option<RunnerJob>,
}
