//! Wire types shared by the Distillery dashboard (`app`), the `server` and the `gpu-runner`.
//!
//! Brief overview: [`RunConfig`] is what a user launches (its `Default` is the reference
//! pipeline's hyper-parameters), [`Run`] and [`Stage`] are what the server records, and
//! [`ApiError`] is the body of every 4xx/5xx response.
//!
//! Architecture invariant: this crate is the only place that defines the JSON wire format.
//! It depends on serde only, so it compiles to wasm32 for the app.

use serde::{Deserialize, Serialize};

pub mod auth;
pub mod config;
pub mod events;
pub mod queries;
pub mod queue;
pub mod runner_status;
pub mod stats;
pub mod stream;

pub use auth::{Login, NewToken, NewUser, Role, Secret, ShareLink, TokenInfo, User, UserUpdate};
pub use config::{RunConfig, ValidationError};
pub use events::{Event, Series, SeriesPoint};
pub use queries::{
    ComparisonReport, MetricComparison, PassageDetail, QueryDetail, QueryDetailAck,
    QueryDetailBatch, QueryDiff, QueryScores,
};
pub use queue::{
    Artifact, ArtifactReport, ClaimRequest, CompleteJob, EvalResult, FailJob, Job, JobState,
    MetricBatch, MetricBatchAck, MetricPoint, ProgressReport, QueryResult, RegisterRunner, RunJob,
    Runner, RunnerCatalog, Shard, ShardStored, LEASE_HEADER,
};
pub use runner_status::{RunnerJob, RunnerStatus};
pub use stats::StageStats;
pub use stream::{LogBatch, LogLine, ProgressDetail, ReleaseJob, StageLogLine};

/// The version prefix of every REST endpoint.
pub const API_PREFIX: &str = "/api/v1";

/// `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    /// `sqlite` or `postgres`.
    pub database: String,
}

/// The body of every error response: `{error, field?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A named group of runs, e.g. "bge-m3 on stackoverflow".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_ms: i64,
}

/// `POST /api/v1/experiments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewExperiment {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Lifecycle of a run and of each of its stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
    /// The stage's content-addressed output already existed and was reused.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "done" => Status::Done,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            "skipped" => Status::Skipped,
            _ => return None,
        })
    }

    /// True once nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Done | Status::Failed | Status::Cancelled | Status::Skipped
        )
    }
}

/// The stages a run expands into, in dependency order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    ScoreTrain,
    ScoreTest,
    TripletsTrain,
    TripletsTest,
    EvalBefore,
    Train,
    EvalAfter,
    EvalTeacher,
    Compare,
}

impl StageKind {
    pub const ALL: [StageKind; 9] = [
        StageKind::ScoreTrain,
        StageKind::ScoreTest,
        StageKind::TripletsTrain,
        StageKind::TripletsTest,
        StageKind::EvalBefore,
        StageKind::Train,
        StageKind::EvalAfter,
        StageKind::EvalTeacher,
        StageKind::Compare,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::ScoreTrain => "score_train",
            StageKind::ScoreTest => "score_test",
            StageKind::TripletsTrain => "triplets_train",
            StageKind::TripletsTest => "triplets_test",
            StageKind::EvalBefore => "eval_before",
            StageKind::Train => "train",
            StageKind::EvalAfter => "eval_after",
            StageKind::EvalTeacher => "eval_teacher",
            StageKind::Compare => "compare",
        }
    }

    pub fn parse(s: &str) -> Option<StageKind> {
        StageKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether this stage scores a split with the teacher (the stages a run may shard, see
    /// [`RunConfig::teacher_shards`]).
    pub fn is_teacher_scoring(self) -> bool {
        matches!(self, StageKind::ScoreTrain | StageKind::ScoreTest)
    }

    /// The stages whose outputs this stage reads.
    pub fn depends_on(self) -> &'static [StageKind] {
        use StageKind::*;
        match self {
            ScoreTrain | ScoreTest | EvalBefore => &[],
            TripletsTrain => &[ScoreTrain],
            TripletsTest => &[ScoreTest],
            Train => &[TripletsTrain, TripletsTest],
            EvalAfter => &[Train],
            EvalTeacher => &[ScoreTest],
            Compare => &[EvalBefore, EvalAfter, EvalTeacher],
        }
    }
}

/// One recorded run of the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: i64,
    pub experiment_id: Option<i64>,
    pub name: String,
    pub status: Status,
    pub config: RunConfig,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Data/model hashes, prompt, seeds, versions and device, merged from stage reports.
    #[serde(default)]
    pub manifest: serde_json::Value,
    /// The student's scores after training, once evaluated.
    #[serde(default)]
    pub metrics: Option<KeyMetrics>,
    /// The student's scores before training, once evaluated.
    #[serde(default)]
    pub before: Option<KeyMetrics>,
}

/// The headline numbers of a run: the trained student's MAP, MRR@k and NDCG@k.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KeyMetrics {
    pub map: f64,
    pub mrr: f64,
    pub ndcg: f64,
}

/// The label of the evaluation whose scores become a run's [`KeyMetrics`].
pub const KEY_EVAL_LABEL: &str = "student_after";

/// `POST /api/v1/runs`: launch a run. Omitted config fields take the reference defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    #[serde(default)]
    pub experiment_id: Option<i64>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub config: RunConfig,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One stage of a run as the server records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub id: i64,
    pub run_id: i64,
    pub kind: StageKind,
    pub status: Status,
    /// Fraction done in `[0, 1]`.
    pub progress: f64,
    pub attempt: i64,
    #[serde(default)]
    pub runner: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub started_ms: Option<i64>,
    #[serde(default)]
    pub finished_ms: Option<i64>,
    /// The last checkpoint reported, which a requeued attempt resumes from.
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// Wall time and throughput of the stage's work, once it is done.
    #[serde(default)]
    pub stats: Option<StageStats>,
}

/// One row of a run's metric table: a metric before and after training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// `map`, `mrr@k` or `ndcg@k`.
    pub metric: String,
    pub before: Option<f64>,
    pub after: Option<f64>,
    pub teacher: Option<f64>,
    pub abs_change: Option<f64>,
    /// `abs_change / before`; absent when `before` is 0 or missing.
    pub rel_change: Option<f64>,
    /// Confidence interval of `after` as reported, if any.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Paired bootstrap 95 % confidence interval of `abs_change`, from the compare stage.
    #[serde(default)]
    pub delta_ci_low: Option<f64>,
    #[serde(default)]
    pub delta_ci_high: Option<f64>,
    /// Two-sided paired randomization-test p-value of the change, from the compare stage.
    #[serde(default)]
    pub p_value: Option<f64>,
}

/// A page of a listing plus the total count, for server-side pagination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_stage_names_round_trip() {
        for k in StageKind::ALL {
            assert_eq!(StageKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        for s in [
            Status::Queued,
            Status::Running,
            Status::Done,
            Status::Failed,
            Status::Cancelled,
            Status::Skipped,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("bogus"), None);
    }

    #[test]
    fn stage_dependencies_point_backwards() {
        for (i, k) in StageKind::ALL.iter().enumerate() {
            for d in k.depends_on() {
                let j = StageKind::ALL.iter().position(|x| x == d).unwrap();
                assert!(j < i, "{k:?} depends on later stage {d:?}");
            }
        }
    }

    #[test]
    fn new_run_rejects_unknown_fields() {
        let err = serde_json::from_str::<NewRun>(r#"{"nmae": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
