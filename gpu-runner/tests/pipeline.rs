//! `pipeline::run` on the synthetic demo data with the tiny student and the BM25 teacher.

mod worker_support;

use candle_core::Device;
use distillery_api::{RunConfig, StageKind};
use gpu_runner::pipeline;

fn config(dir: &std::path::Path) -> RunConfig {
    worker_support::demo_inputs(dir, RunConfig::default().epochs)
}

fn manifest(run: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap()
}

/// Each stage's `reused` flag in `manifest.json`, in stage order.
fn reused_flags(run: &std::path::Path) -> Vec<bool> {
    manifest(run)["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reused"].as_bool().unwrap())
        .collect()
}

#[test]
fn runs_every_stage_then_reuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let run = dir.path().join("run");
    let report = pipeline::run(&cfg, &run, &Device::Cpu).unwrap();
    assert_eq!(report.teacher["map"], 1.0);
    assert_eq!(report.compare["queries"], 20);
    let manifest = manifest(&run);
    let stages = manifest["stages"].as_array().unwrap();
    assert_eq!(stages.len(), StageKind::ALL.len());
    assert!(stages.iter().all(|s| s["reused"] == false));
    assert_eq!(manifest["student_hash"].as_str().unwrap().len(), 64);

    // Same inputs: everything is reused. A new seed re-runs only what depends on it.
    pipeline::run(&cfg, &run, &Device::Cpu).unwrap();
    assert!(reused_flags(&run).iter().all(|&reused| reused));
    let cfg2 = RunConfig { seed: 1, ..cfg };
    pipeline::run(&cfg2, &run, &Device::Cpu).unwrap();
    let reused = reused_flags(&run);
    // score train/test and eval before/teacher do not depend on the seed.
    assert_eq!(
        reused,
        [true, true, false, false, true, false, false, true, false]
    );
}

#[test]
fn missing_input_fails_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RunConfig {
        test_data: dir.path().join("nope.jsonl").display().to_string(),
        ..config(dir.path())
    };
    let err = pipeline::run(&cfg, &dir.path().join("run"), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("nope.jsonl"), "{err}");
}

#[test]
fn reads_toml_configs_and_rejects_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    std::fs::write(
        &path,
        "teacher_kind = \"bm25\"\nstudent = \"s\"\ntrain_data = \"a.jsonl\"\ntest_data = \"b.jsonl\"\nlr = 1e-3\n",
    )
    .unwrap();
    let cfg = pipeline::read_config(&path).unwrap();
    assert_eq!(
        (cfg.teacher_kind.as_str(), cfg.lr, cfg.top_k),
        ("bm25", 1e-3, 8)
    );
    std::fs::write(&path, "teacher_kind = \"bm25\"\nstudnt = \"s\"\n").unwrap();
    let err = pipeline::read_config(&path).unwrap_err().to_string();
    assert!(err.contains("run.toml") && err.contains("studnt"), "{err}");
}

#[test]
fn run_through_stops_after_the_asked_stage_and_run_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let run = dir.path().join("run");
    let outcome =
        pipeline::run_through(&cfg, &run, &Device::Cpu, Some(StageKind::TripletsTrain)).unwrap();
    let pipeline::Outcome::Stopped(rec) = outcome else {
        panic!("expected a stop after triplets_train");
    };
    assert_eq!((rec.stage, rec.reused), (StageKind::TripletsTrain, false));
    assert!(run.join(&rec.dir).join("triplets.jsonl").is_file());
    // Only the stage and what it depends on ran (score_train), not score_test.
    let dirs = std::fs::read_dir(run.join("stages")).unwrap().count();
    assert_eq!(dirs, 2);
    // The teacher's evaluation needs score_test only: no training runs for it.
    pipeline::run_through(&cfg, &run, &Device::Cpu, Some(StageKind::EvalTeacher)).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(run.join("stages"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .split('-')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "eval_teacher",
            "score_test",
            "score_train",
            "triplets_train"
        ]
    );
    pipeline::run(&cfg, &run, &Device::Cpu).unwrap();
    let reused = reused_flags(&run);
    assert_eq!(
        reused,
        [true, true, true, false, false, false, false, true, false]
    );
}
