//! Wire types of what the compare stage produces: the per-query detail the runner uploads for
//! each test query (its passages with teacher and student scores, the top 10 before and after
//! training), the light rows the run page lists sorted by the change of a metric, and the paired
//! comparison (CI of the change, p-value) of each metric.

use serde::{Deserialize, Serialize};

/// AP, RR@k and NDCG@k of one model on one query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryScores {
    pub ap: f64,
    pub rr: f64,
    pub ndcg: f64,
}

impl QueryScores {
    /// All three are finite numbers.
    pub fn is_finite(&self) -> bool {
        [self.ap, self.rr, self.ndcg].iter().all(|v| v.is_finite())
    }
}

/// One passage of a query as the explorer shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassageDetail {
    /// The passage text, cut to [`MAX_PASSAGE_CHARS`] characters (then ending in `…`).
    pub text: String,
    /// A positive of the query.
    pub relevant: bool,
    /// The teacher's score.
    pub teacher: f64,
    /// The student's score before training.
    pub before: f64,
    /// The student's score after training.
    pub after: f64,
    /// 1-based rank among the query's passages by the student before training.
    pub rank_before: u32,
    /// 1-based rank by the student after training.
    pub rank_after: u32,
}

/// Passage texts longer than this many characters are cut in a [`QueryDetail`].
pub const MAX_PASSAGE_CHARS: usize = 2000;

/// Everything the explorer shows about one test query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryDetail {
    /// The 0-based index of the query in the test data file.
    pub query_id: String,
    pub query: String,
    pub n_positive: u32,
    pub n_negative: u32,
    pub before: QueryScores,
    pub after: QueryScores,
    pub teacher: QueryScores,
    /// The positives, then the other passages of the two top lists, each once.
    pub passages: Vec<PassageDetail>,
    /// Indices into `passages` of the student's top 10 before training, best first.
    pub top_before: Vec<u32>,
    /// Indices into `passages` of the student's top 10 after training, best first.
    pub top_after: Vec<u32>,
}

/// `POST /api/v1/jobs/{id}/queries`: a batch of query details (at most
/// [`MAX_QUERY_BATCH`]); idempotent on (run, query_id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryDetailBatch {
    pub lease: String,
    pub queries: Vec<QueryDetail>,
}

/// The most query details one batch may carry.
pub const MAX_QUERY_BATCH: usize = 500;

/// How many query details of a batch were stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryDetailAck {
    pub received: usize,
}

/// One row of `GET /api/v1/runs/{id}/queries`: a query's scores before and after training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryDiff {
    pub query_id: String,
    pub query: String,
    pub before: QueryScores,
    pub after: QueryScores,
    #[serde(default)]
    pub teacher: Option<QueryScores>,
    /// `after − before` of the metric the list is sorted by.
    pub delta: f64,
    /// Whether `GET /runs/{id}/queries/{query_id}` has the passages of this query.
    pub has_detail: bool,
}

/// The paired before/after comparison of one metric: bootstrap 95 % CI of the mean change and
/// the two-sided randomization-test p-value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// `map`, `mrr@k` or `ndcg@k`.
    pub metric: String,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
}

/// `POST /api/v1/jobs/{id}/comparison`: the compare stage's result; replaces an earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonReport {
    pub lease: String,
    pub metrics: Vec<MetricComparison>,
}
