//! Live updates pushed over server-sent events (`/api/v1/events`, `/api/v1/runs/{id}/events`).
//!
//! Each SSE message has the event name [`Event::name`] and the JSON of the event as its data.

use serde::{Deserialize, Serialize};

use crate::{StageKind, Status};

/// Something that changed; every variant names its run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A run was created.
    RunCreated { run_id: i64 },
    /// A run changed status.
    RunStatus { run_id: i64, status: Status },
    /// A run was deleted.
    RunDeleted { run_id: i64 },
    /// A stage changed status.
    StageStatus {
        run_id: i64,
        stage_id: i64,
        kind: StageKind,
        status: Status,
        attempt: i64,
    },
    /// A stage reported progress.
    Progress {
        run_id: i64,
        stage_id: i64,
        kind: StageKind,
        progress: f64,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        detail: Option<crate::ProgressDetail>,
    },
    /// New metric points arrived; `last` is the newest point of each series in the batch.
    Metrics {
        run_id: i64,
        stage_id: i64,
        last: Vec<SeriesPoint>,
    },
    /// New log lines of a stage's current attempt.
    Log {
        run_id: i64,
        stage_id: i64,
        kind: StageKind,
        attempt: i64,
        lines: Vec<crate::LogLine>,
    },
}

impl Event {
    /// The run the event is about.
    pub fn run_id(&self) -> i64 {
        match self {
            Event::RunCreated { run_id }
            | Event::RunStatus { run_id, .. }
            | Event::RunDeleted { run_id }
            | Event::StageStatus { run_id, .. }
            | Event::Progress { run_id, .. }
            | Event::Metrics { run_id, .. }
            | Event::Log { run_id, .. } => *run_id,
        }
    }

    /// The SSE event name, equal to the `type` tag.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RunCreated { .. } => "run_created",
            Event::RunStatus { .. } => "run_status",
            Event::RunDeleted { .. } => "run_deleted",
            Event::StageStatus { .. } => "stage_status",
            Event::Progress { .. } => "progress",
            Event::Metrics { .. } => "metrics",
            Event::Log { .. } => "log",
        }
    }

    /// Whether the run-list stream carries it (metric points and log lines only go to the
    /// run's own stream).
    pub fn for_run_list(&self) -> bool {
        !matches!(self, Event::Metrics { .. } | Event::Log { .. })
    }
}

/// One named point of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub name: String,
    pub step: i64,
    pub value: f64,
}

/// `GET /api/v1/runs/{id}/series?name=loss&max_points=2000`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub run_id: i64,
    pub name: String,
    /// Points stored for this series.
    pub total_points: i64,
    /// Steps and values, ascending by step, at most `max_points` long.
    pub steps: Vec<i64>,
    pub values: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_tag_matches_name() {
        let e = Event::RunStatus {
            run_id: 3,
            status: Status::Running,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], e.name());
        assert_eq!(e.run_id(), 3);
    }
}
