//! The run list's filters and sort orders, turned into SQL with bound parameters.

use distillery_api::Status;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

/// A key metric of a run: the trained student's score, or its change from before training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMetric {
    Map,
    Mrr,
    Ndcg,
    MapDelta,
    MrrDelta,
    NdcgDelta,
}

impl RunMetric {
    pub const ALL: [RunMetric; 6] = [
        RunMetric::Map,
        RunMetric::Mrr,
        RunMetric::Ndcg,
        RunMetric::MapDelta,
        RunMetric::MrrDelta,
        RunMetric::NdcgDelta,
    ];

    /// The name used in query strings: `map`, `mrr`, `ndcg`, `map_delta`, …
    pub fn name(self) -> &'static str {
        match self {
            RunMetric::Map => "map",
            RunMetric::Mrr => "mrr",
            RunMetric::Ndcg => "ndcg",
            RunMetric::MapDelta => "map_delta",
            RunMetric::MrrDelta => "mrr_delta",
            RunMetric::NdcgDelta => "ndcg_delta",
        }
    }

    /// The SQL expression of the metric (NULL until evaluated).
    fn expr(self) -> &'static str {
        match self {
            RunMetric::Map => "metric_map",
            RunMetric::Mrr => "metric_mrr",
            RunMetric::Ndcg => "metric_ndcg",
            RunMetric::MapDelta => "(metric_map - before_map)",
            RunMetric::MrrDelta => "(metric_mrr - before_mrr)",
            RunMetric::NdcgDelta => "(metric_ndcg - before_ndcg)",
        }
    }
}

/// Filters of the run list; `None` or empty matches everything.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Runs in any of these statuses.
    pub status: Vec<Status>,
    /// Runs carrying every one of these tags.
    pub tags: Vec<String>,
    /// Case-insensitive substring of the teacher path (or kind, for BM25 runs).
    pub teacher: Option<String>,
    /// Case-insensitive substring of the student path.
    pub student: Option<String>,
    /// Case-insensitive substring of the training data path.
    pub dataset: Option<String>,
    pub experiment_id: Option<i64>,
    /// Inclusive `[min, max]` bounds on key metrics; a bounded metric excludes unevaluated runs.
    pub ranges: Vec<(RunMetric, Option<f64>, Option<f64>)>,
}

/// Sort orders of the run list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSort {
    Created,
    Name,
    Status,
    Metric(RunMetric),
}

impl RunSort {
    pub fn parse(s: &str) -> Option<RunSort> {
        Some(match s {
            "created" => RunSort::Created,
            "name" => RunSort::Name,
            "status" => RunSort::Status,
            _ => RunSort::Metric(RunMetric::ALL.into_iter().find(|m| m.name() == s)?),
        })
    }

    fn expr(self) -> &'static str {
        match self {
            RunSort::Created => "created_ms",
            RunSort::Name => "name",
            RunSort::Status => "status",
            RunSort::Metric(m) => m.expr(),
        }
    }
}

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
}

/// A `WHERE` clause (empty when nothing is filtered) and its parameters, numbered from `$1`.
#[derive(Debug, Clone, Default)]
pub struct WhereClause {
    pub sql: String,
    binds: Vec<Bind>,
}

impl WhereClause {
    /// Number of parameters, so later placeholders start at `len() + 1`.
    pub fn len(&self) -> usize {
        self.binds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.binds.is_empty()
    }

    /// Binds the parameters to `q` in order.
    pub fn bind<'q>(&self, mut q: Query<'q, Any, AnyArguments>) -> Query<'q, Any, AnyArguments> {
        for b in &self.binds {
            q = match b {
                Bind::Text(t) => q.bind(t.clone()),
                Bind::Int(i) => q.bind(*i),
                Bind::Float(f) => q.bind(*f),
            };
        }
        q
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn contains_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl RunFilter {
    /// The filter as SQL over the `runs` table.
    pub fn to_sql(&self) -> WhereClause {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        if !self.status.is_empty() {
            binds.extend(self.status.iter().map(|s| Bind::Text(s.as_str().into())));
            let list: Vec<String> = (1..=binds.len()).map(|n| format!("${n}")).collect();
            clauses.push(format!("status IN ({})", list.join(", ")));
        }
        let mut push = |clause: &dyn Fn(usize) -> String, b: Bind| {
            binds.push(b);
            clauses.push(clause(binds.len()));
        };
        for (column, value) in [
            ("teacher", &self.teacher),
            ("student", &self.student),
            ("dataset", &self.dataset),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
                push(
                    &|n| format!("LOWER({column}) LIKE ${n} ESCAPE '\\'"),
                    Bind::Text(contains_pattern(v.trim())),
                );
            }
        }
        for tag in &self.tags {
            push(
                &|n| {
                    format!("EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = runs.id AND t.tag = ${n})")
                },
                Bind::Text(tag.clone()),
            );
        }
        if let Some(e) = self.experiment_id {
            push(&|n| format!("experiment_id = ${n}"), Bind::Int(e));
        }
        for (metric, min, max) in &self.ranges {
            let expr = metric.expr();
            if let Some(v) = min {
                push(&|n| format!("{expr} >= ${n}"), Bind::Float(*v));
            }
            if let Some(v) = max {
                push(&|n| format!("{expr} <= ${n}"), Bind::Float(*v));
            }
        }
        let sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        WhereClause { sql, binds }
    }
}

/// `ORDER BY` for a sort; unevaluated runs (NULL metrics) sort last on both backends.
pub fn order_by(sort: RunSort, descending: bool) -> String {
    let dir = if descending { "DESC" } else { "ASC" };
    let expr = sort.expr();
    format!(" ORDER BY ({expr} IS NULL), {expr} {dir}, id {dir}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_number_their_parameters_in_order() {
        let f = RunFilter {
            status: vec![Status::Done, Status::Failed],
            teacher: Some(" Qwen3 ".into()),
            tags: vec!["a".into(), "b".into()],
            experiment_id: Some(7),
            ranges: vec![(RunMetric::MapDelta, Some(0.01), None)],
            ..RunFilter::default()
        };
        let w = f.to_sql();
        assert_eq!(w.len(), 7);
        assert!(
            w.sql
                .starts_with(" WHERE status IN ($1, $2) AND LOWER(teacher) LIKE $3"),
            "{}",
            w.sql
        );
        assert!(w.sql.contains("t.tag = $5)"), "{}", w.sql);
        assert!(w.sql.contains("experiment_id = $6"), "{}", w.sql);
        assert!(
            w.sql.ends_with("(metric_map - before_map) >= $7"),
            "{}",
            w.sql
        );
        assert!(RunFilter::default().to_sql().sql.is_empty());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("A_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn sorts_parse_and_keep_unevaluated_runs_last() {
        assert_eq!(
            RunSort::parse("ndcg_delta"),
            Some(RunSort::Metric(RunMetric::NdcgDelta))
        );
        assert_eq!(RunSort::parse("bogus"), None);
        assert_eq!(
            order_by(RunSort::Metric(RunMetric::Map), true),
            " ORDER BY (metric_map IS NULL), metric_map DESC, id DESC"
        );
    }
}
