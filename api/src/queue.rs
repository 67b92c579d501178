//! Wire types of the runner protocol: registration, heartbeats, claims and job reports.
//!
//! A runner registers once, then loops: claim a job, report progress, metric batches and
//! artifacts while it works, and finally complete or fail it. Every report on a job carries the
//! lease token the claim returned; a report with a stale lease is refused with 409.

use serde::{Deserialize, Serialize};

use crate::{StageKind, Status};

/// `POST /api/v1/runners`: register (or re-register) a runner by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRunner {
    pub name: String,
    /// e.g. `cuda:0 NVIDIA H100` or `cpu`.
    #[serde(default)]
    pub device: String,
    /// Device memory in bytes (0 when unknown).
    #[serde(default)]
    pub memory_bytes: i64,
    /// The model directories and data files this runner can read, offered by the launch form.
    #[serde(default)]
    pub catalog: RunnerCatalog,
}

/// What a runner found under its `--catalog` folders: model directories (holding a
/// `config.json`) and MTEB reranking files (`.jsonl` / `.jsonl.gz`), as paths on the runner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerCatalog {
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub datasets: Vec<String>,
}

/// A registered runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runner {
    pub id: i64,
    pub name: String,
    pub device: String,
    pub memory_bytes: i64,
    pub registered_ms: i64,
    pub last_heartbeat_ms: i64,
    #[serde(default)]
    pub catalog: RunnerCatalog,
}

/// `POST /api/v1/runners/{id}/claim`: ask for the next ready job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// How long the lease lasts before the job is requeued (default 60 s, at most 1 h).
    #[serde(default)]
    pub lease_ms: Option<i64>,
    /// Only claim these stage kinds (all when empty).
    #[serde(default)]
    pub kinds: Vec<StageKind>,
}

/// A leased unit of work: one stage of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub run_id: i64,
    pub stage_id: i64,
    pub kind: StageKind,
    /// 1 on the first claim, incremented each time an expired lease is requeued.
    pub attempt: i64,
    /// Must accompany every report on this job.
    pub lease: String,
    pub lease_until_ms: i64,
    /// The run's full configuration.
    pub config: crate::RunConfig,
    /// The last checkpoint a previous attempt reported, to resume from.
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// The part of a teacher-scoring stage this job scores, when the run shards it.
    #[serde(default)]
    pub shard: Option<Shard>,
}

/// Shard `index` of `count` (0-based) of a teacher-scoring stage: a contiguous range of the
/// data file's flattened pairs, so that the shards' score files concatenated in index order are
/// the unsharded score file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The header that carries a job's lease on the raw-body shard upload
/// (`PUT /api/v1/jobs/{id}/shard`).
pub const LEASE_HEADER: &str = "x-distillery-lease";

/// The answer to a shard upload: where the server keeps the file and what it received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardStored {
    pub size_bytes: i64,
    /// Hex SHA-256 of the stored file.
    pub sha256: String,
}

/// One job of a run, as `GET /api/v1/runs/{id}/jobs` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunJob {
    pub id: i64,
    pub stage_id: i64,
    pub kind: StageKind,
    #[serde(default)]
    pub shard: Option<Shard>,
    pub status: Status,
    pub attempt: i64,
    /// The runner that holds or last held the job.
    #[serde(default)]
    pub runner_id: Option<i64>,
}

/// `POST /api/v1/jobs/{id}/progress`: progress in `[0, 1]`; also extends the lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressReport {
    pub lease: String,
    pub progress: f64,
    #[serde(default)]
    pub message: Option<String>,
    /// A checkpoint to resume from if this attempt dies.
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// Counted progress (done/total, rate, ETA), passed on in the progress event.
    #[serde(default)]
    pub detail: Option<crate::ProgressDetail>,
}

/// One point of a metric series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricPoint {
    pub name: String,
    pub step: i64,
    pub value: f64,
    /// Epoch ms when measured (the server's clock when omitted).
    #[serde(default)]
    pub time_ms: Option<i64>,
}

/// `POST /api/v1/jobs/{id}/metrics`: idempotent on (stage, name, step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricBatch {
    pub lease: String,
    pub points: Vec<MetricPoint>,
}

/// How many points of a batch were new.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricBatchAck {
    pub received: usize,
    pub inserted: u64,
}

/// `POST /api/v1/jobs/{id}/artifacts`: a file the stage produced, by path under the artifact
/// root, or inline as base-16 bytes for small files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactReport {
    pub lease: String,
    /// e.g. `teacher_scores`, `triplets`, `checkpoint`, `model`, `report`.
    pub kind: String,
    /// Relative to the server's artifact root.
    #[serde(default)]
    pub path: Option<String>,
    /// Hex-encoded content stored in the database (at most 4 MiB decoded).
    #[serde(default)]
    pub blob_hex: Option<String>,
    pub size_bytes: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
}

/// A recorded artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub id: i64,
    pub run_id: i64,
    pub stage_id: i64,
    pub kind: String,
    pub path: Option<String>,
    /// True when the content is stored in the database.
    pub stored: bool,
    pub size_bytes: i64,
    pub sha256: String,
    pub created_ms: i64,
}

/// Aggregate evaluation of one model on the test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalResult {
    /// `student_before`, `student_after` or `teacher`.
    pub label: String,
    pub at_k: u32,
    pub map: f64,
    pub mrr: f64,
    pub ndcg: f64,
    pub n_queries: i64,
    pub n_pairs: i64,
    /// Confidence intervals as JSON, e.g. `{"map": [0.41, 0.45]}`.
    #[serde(default)]
    pub ci: serde_json::Value,
}

/// The score of one model on one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryResult {
    pub label: String,
    pub query_id: String,
    #[serde(default)]
    pub query: String,
    pub ap: f64,
    pub rr: f64,
    pub ndcg: f64,
}

/// `POST /api/v1/jobs/{id}/complete`: the stage is done (or `skipped` when its output already
/// existed), with any evaluation results it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteJob {
    pub lease: String,
    #[serde(default)]
    pub skipped: bool,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub evals: Vec<EvalResult>,
    #[serde(default)]
    pub queries: Vec<QueryResult>,
    /// Facts about this stage to merge into the run's manifest (hashes, versions, device…).
    #[serde(default)]
    pub manifest: serde_json::Map<String, serde_json::Value>,
    /// Wall time and throughput of the work (absent when the stage was reused).
    #[serde(default)]
    pub stats: Option<crate::StageStats>,
}

/// `POST /api/v1/jobs/{id}/fail`: the stage failed; the run fails with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailJob {
    pub lease: String,
    pub message: String,
}

/// The state of a job after a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    pub id: i64,
    pub status: Status,
    pub lease_until_ms: Option<i64>,
}
