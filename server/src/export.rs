//! CSV export: the runs table, a run's metric table, its curves and its per-query results.
//!
//! Every cell is quoted when needed (RFC 4180) and made Excel-safe: a text cell starting with
//! `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so a spreadsheet never
//! runs it as a formula. Plain numbers such as `-0.5` are left alone.

use distillery_api::{EvalResult, MetricComparison, MetricRow, QueryResult, Run};

/// One CSV cell, Excel-safe and quoted as needed.
pub fn cell(raw: &str) -> String {
    let dangerous = raw.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let is_number = raw.parse::<f64>().is_ok_and(f64::is_finite);
    let text = if dangerous && !is_number {
        format!("'{raw}")
    } else {
        raw.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A whole CSV document with CRLF line ends.
pub fn csv<S: AsRef<str>>(header: &[&str], rows: impl IntoIterator<Item = Vec<S>>) -> String {
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let cells: Vec<String> = cells.map(cell).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    line(&mut header.iter().copied(), &mut out);
    for row in rows {
        line(&mut row.iter().map(|s| s.as_ref()), &mut out);
    }
    out
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The runs table: identity, status, timestamps, tags, key metrics after and before training,
/// and every config field.
pub fn runs_csv(runs: &[Run]) -> String {
    let config_fields: Vec<&str> = distillery_api::RunConfig::default()
        .fields()
        .iter()
        .map(|(k, _)| *k)
        .collect();
    let mut header = vec![
        "id",
        "name",
        "status",
        "experiment_id",
        "created_ms",
        "updated_ms",
        "tags",
        "map",
        "mrr",
        "ndcg",
        "map_before",
        "mrr_before",
        "ndcg_before",
    ];
    header.extend(&config_fields);
    let rows = runs.iter().map(|r| {
        let mut row = vec![
            r.id.to_string(),
            r.name.clone(),
            r.status.as_str().to_string(),
            r.experiment_id.map(|e| e.to_string()).unwrap_or_default(),
            r.created_ms.to_string(),
            r.updated_ms.to_string(),
            r.tags.join(";"),
            opt(r.metrics.map(|m| m.map)),
            opt(r.metrics.map(|m| m.mrr)),
            opt(r.metrics.map(|m| m.ndcg)),
            opt(r.before.map(|m| m.map)),
            opt(r.before.map(|m| m.mrr)),
            opt(r.before.map(|m| m.ndcg)),
        ];
        row.extend(r.config.fields().into_iter().map(|(_, v)| v));
        row
    });
    csv(&header, rows)
}

/// Reads one score of an evaluation.
type Score = fn(&EvalResult) -> f64;

/// Before/after/teacher rows for MAP, MRR@k and NDCG@k from a run's evaluations
/// (`student_before`, `student_after`, `teacher`). The CI is the one reported with `after`
/// as `{"map": [low, high], …}`.
pub fn metric_rows(evals: &[EvalResult]) -> Vec<MetricRow> {
    let find = |label: &str| evals.iter().find(|e| e.label == label);
    let (before, after, teacher) = (
        find("student_before"),
        find("student_after"),
        find("teacher"),
    );
    let at_k = after.or(before).or(teacher).map(|e| e.at_k).unwrap_or(10);
    let metrics: [(&str, String, Score); 3] = [
        ("map", "map".into(), |e| e.map),
        ("mrr", format!("mrr@{at_k}"), |e| e.mrr),
        ("ndcg", format!("ndcg@{at_k}"), |e| e.ndcg),
    ];
    metrics
        .into_iter()
        .map(|(key, metric, get)| {
            let b = before.map(get);
            let a = after.map(get);
            let abs_change = a.zip(b).map(|(a, b)| a - b);
            let rel_change = abs_change
                .zip(b)
                .and_then(|(d, b)| (b != 0.0).then(|| d / b));
            let ci = after.and_then(|e| e.ci.get(key)).and_then(|v| v.as_array());
            let bound = |i: usize| ci.and_then(|c| c.get(i)).and_then(|v| v.as_f64());
            MetricRow {
                metric,
                before: b,
                after: a,
                teacher: teacher.map(get),
                abs_change,
                rel_change,
                ci_low: bound(0),
                ci_high: bound(1),
                delta_ci_low: None,
                delta_ci_high: None,
                p_value: None,
            }
        })
        .collect()
}

/// Fills each row's CI of the change and p-value from the compare stage's comparison of the
/// same metric.
pub fn with_comparisons(
    mut rows: Vec<MetricRow>,
    comparisons: &[MetricComparison],
) -> Vec<MetricRow> {
    for row in &mut rows {
        if let Some(c) = comparisons.iter().find(|c| c.metric == row.metric) {
            row.delta_ci_low = Some(c.ci_low);
            row.delta_ci_high = Some(c.ci_high);
            row.p_value = Some(c.p_value);
        }
    }
    rows
}

pub fn metrics_csv(rows: &[MetricRow]) -> String {
    let header = [
        "metric",
        "before",
        "after",
        "teacher",
        "abs_change",
        "rel_change",
        "ci_low",
        "ci_high",
        "delta_ci_low",
        "delta_ci_high",
        "p_value",
    ];
    csv(
        &header,
        rows.iter().map(|r| {
            vec![
                r.metric.clone(),
                opt(r.before),
                opt(r.after),
                opt(r.teacher),
                opt(r.abs_change),
                opt(r.rel_change),
                opt(r.ci_low),
                opt(r.ci_high),
                opt(r.delta_ci_low),
                opt(r.delta_ci_high),
                opt(r.p_value),
            ]
        }),
    )
}

/// `step,loss,lr` at full resolution; a step missing from one series leaves its cell empty.
pub fn curves_csv(loss: (&[i64], &[f64]), lr: (&[i64], &[f64])) -> String {
    let mut rows = Vec::with_capacity(loss.0.len().max(lr.0.len()));
    let (mut i, mut j) = (0, 0);
    while i < loss.0.len() || j < lr.0.len() {
        let si = loss.0.get(i).copied().unwrap_or(i64::MAX);
        let sj = lr.0.get(j).copied().unwrap_or(i64::MAX);
        let step = si.min(sj);
        let mut row = vec![step.to_string(), String::new(), String::new()];
        if si == step {
            row[1] = loss.1[i].to_string();
            i += 1;
        }
        if sj == step {
            row[2] = lr.1[j].to_string();
            j += 1;
        }
        rows.push(row);
    }
    csv(&["step", "loss", "lr"], rows)
}

pub fn queries_csv(results: &[QueryResult]) -> String {
    csv(
        &["query_id", "query", "label", "ap", "rr", "ndcg"],
        results.iter().map(|q| {
            vec![
                q.query_id.clone(),
                q.query.clone(),
                q.label.clone(),
                q.ap.to_string(),
                q.rr.to_string(),
                q.ndcg.to_string(),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_excel_safe() {
        let cases = [
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("=SUM(A1)", "'=SUM(A1)"),
            ("+cmd", "'+cmd"),
            ("-cmd|x", "'-cmd|x"),
            ("@foo", "'@foo"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("-0.5", "-0.5"),
            ("=1,2", "\"'=1,2\""),
        ];
        for (raw, want) in cases {
            assert_eq!(cell(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn curves_join_on_step() {
        let out = curves_csv((&[0, 1, 3], &[1.0, 0.5, 0.25]), (&[1, 2], &[1e-5, 2e-5]));
        assert_eq!(
            out,
            "step,loss,lr\r\n0,1,\r\n1,0.5,0.00001\r\n2,,0.00002\r\n3,0.25,\r\n"
        );
    }

    #[test]
    fn metric_rows_compute_changes() {
        let e = |label: &str, map: f64| EvalResult {
            label: label.into(),
            at_k: 10,
            map,
            mrr: map,
            ndcg: map,
            n_queries: 5,
            n_pairs: 50,
            ci: serde_json::json!({"map": [0.5, 0.7]}),
        };
        let rows = metric_rows(&[
            e("student_before", 0.4),
            e("student_after", 0.6),
            e("teacher", 0.8),
        ]);
        assert_eq!(rows[1].metric, "mrr@10");
        let map = &rows[0];
        assert!((map.abs_change.unwrap() - 0.2).abs() < 1e-12);
        assert!((map.rel_change.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(
            (map.ci_low, map.ci_high, map.teacher),
            (Some(0.5), Some(0.7), Some(0.8))
        );
        assert_eq!(rows[1].ci_low, None);
        let c = |metric: &str, p: f64| MetricComparison {
            metric: metric.into(),
            ci_low: 0.1,
            ci_high: 0.3,
            p_value: p,
        };
        let rows = with_comparisons(rows, &[c("ndcg@10", 0.01), c("ndcg@5", 0.9)]);
        assert_eq!(
            (rows[2].delta_ci_low, rows[2].delta_ci_high, rows[2].p_value),
            (Some(0.1), Some(0.3), Some(0.01))
        );
        assert_eq!(rows[0].p_value, None, "no comparison of map");
    }
}
