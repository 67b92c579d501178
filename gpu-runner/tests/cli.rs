//! End-to-end tests of the pure pipeline subcommands of the `gpu-runner` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const DATA: &str = concat!(
    "{\"query\": \"q1\", \"positive\": [\"a\"], \"negative\": [\"b\", \"c\"]}\n",
    "{\"query\": \"q2\", \"positive\": [\"d\"], \"negative\": [\"e\"]}\n",
);

fn gpu_runner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpu-runner"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn score_lines(scores: &[(&str, &str, f64)]) -> String {
    scores
        .iter()
        .map(|(q, p, s)| {
            format!("{{\"query\": \"{q}\", \"passage\": \"{p}\", \"score\": {s:?}}}\n")
        })
        .collect()
}

fn setup(dir: &Path, before: &[f64], after: &[f64]) -> (PathBuf, PathBuf, PathBuf) {
    let pairs = [
        ("q1", "a"),
        ("q1", "b"),
        ("q1", "c"),
        ("q2", "d"),
        ("q2", "e"),
    ];
    let data = dir.join("test.jsonl");
    std::fs::write(&data, DATA).unwrap();
    let mut paths = Vec::new();
    for (name, scores) in [("before.jsonl", before), ("after.jsonl", after)] {
        let recs: Vec<_> = pairs
            .iter()
            .zip(scores)
            .map(|((q, p), s)| (*q, *p, *s))
            .collect();
        let path = dir.join(name);
        std::fs::write(&path, score_lines(&recs)).unwrap();
        paths.push(path);
    }
    (data, paths[0].clone(), paths[1].clone())
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn metrics_prints_summary_and_per_query() {
    let dir = tempfile::tempdir().unwrap();
    let (data, before, _) = setup(dir.path(), &[0.1, 0.9, 0.5, 2.0, 1.0], &[0.0; 5]);
    let per_query = dir.path().join("pq.jsonl");
    let out = gpu_runner(&[
        "metrics",
        "--data",
        data.to_str().unwrap(),
        "--scores",
        before.to_str().unwrap(),
        "--at-k",
        "5",
        "--per-query",
        per_query.to_str().unwrap(),
    ]);
    let v = stdout_json(&out);
    // q1: positive ranked 3rd (AP 1/3, MRR 1/3, NDCG 0.5); q2: ranked 1st.
    assert!(
        (v["map"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12,
        "{v}"
    );
    assert!(
        (v["mrr@5"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12,
        "{v}"
    );
    assert!((v["ndcg@5"].as_f64().unwrap() - 0.75).abs() < 1e-12, "{v}");
    assert_eq!(v["queries"], 2);
    assert_eq!(v["relevant_irrelevant_ties"], 0);
    let lines: Vec<Value> = std::fs::read_to_string(&per_query)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["ranks"], serde_json::json!([3, 1, 2]));
}

#[test]
fn metrics_names_the_first_mismatching_score_line() {
    let dir = tempfile::tempdir().unwrap();
    let (data, before, _) = setup(dir.path(), &[0.0; 5], &[0.0; 5]);
    let text = std::fs::read_to_string(&before)
        .unwrap()
        .replace("\"passage\": \"d\"", "\"passage\": \"x\"");
    std::fs::write(&before, text).unwrap();
    let out = gpu_runner(&[
        "metrics",
        "--data",
        data.to_str().unwrap(),
        "--scores",
        before.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("before.jsonl:4: passage: does not match"),
        "{err}"
    );
}

#[test]
fn compare_reports_json_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let (data, before, after) = setup(
        dir.path(),
        &[0.1, 0.9, 0.5, 2.0, 1.0],
        &[3.0, 0.9, 0.5, 2.0, 1.0],
    );
    let args = [
        "compare",
        "--data",
        data.to_str().unwrap(),
        "--before",
        before.to_str().unwrap(),
        "--after",
        after.to_str().unwrap(),
        "--resamples",
        "500",
    ];
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let v = stdout_json(&gpu_runner(&json_args));
    assert_eq!(v["queries"], 2);
    let map = &v["metrics"][0];
    assert_eq!(map["metric"], "map");
    assert!(
        (map["absolute"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12,
        "{v}"
    );
    assert!(
        (map["relative_pct"].as_f64().unwrap() - 50.0).abs() < 1e-9,
        "{v}"
    );

    let out = gpu_runner(&args);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("metric"), "{table}");
    assert!(table.contains("ndcg@10"), "{table}");
}

#[test]
fn triplets_and_data_stats() {
    let dir = tempfile::tempdir().unwrap();
    let (data, before, _) = setup(dir.path(), &[0.1, 0.9, 0.5, 2.0, 1.0], &[0.0; 5]);
    let output = dir.path().join("triplets.jsonl");
    let out = gpu_runner(&[
        "triplets",
        "--input",
        before.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrote 4 triplets"));
    let text = std::fs::read_to_string(&output).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "{\"query\": \"q1\", \"positive\": \"b\", \"negative\": \"c\", \"score\": 0.4}"
    );

    let v = stdout_json(&gpu_runner(&[
        "data-stats",
        "--data",
        data.to_str().unwrap(),
    ]));
    assert_eq!(v["queries"], 2);
    assert_eq!(v["pairs"], 5);

    let out = gpu_runner(&[
        "triplets",
        "--input",
        "/nonexistent.jsonl",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
}
