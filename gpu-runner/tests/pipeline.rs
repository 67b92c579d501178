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
    // Every stage measured its work: the 20 test queries' pairs were predicted twice.
    for s in stages {
        let stats = &s["stats"];
        assert!(stats["seconds"].as_f64().unwrap() > 0.0, "{s}");
        assert!(stats["items"].as_u64().unwrap() > 0, "{s}");
    }
    let by_kind = |k: StageKind| &stages[StageKind::ALL.iter().position(|&x| x == k).unwrap()];
    let before = &by_kind(StageKind::EvalBefore)["stats"];
    assert_eq!(before["unit"], "pairs");
    assert_eq!(
        before["items"],
        by_kind(StageKind::EvalAfter)["stats"]["items"]
    );
    assert_eq!(by_kind(StageKind::Train)["stats"]["unit"], "triplets");
    assert_eq!(by_kind(StageKind::EvalTeacher)["stats"]["items"], 20);
    assert!(!manifest["git_commit"].as_str().unwrap().is_empty());
    assert!(manifest["candle_version"]
        .as_str()
        .unwrap()
        .starts_with("0."));

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

#[test]
fn bf16_evaluation_passes_its_parity_gate_or_is_refused_naming_the_setting() {
    use gpu_runner::pipeline::stages::{bf16_parity_gate, eval_dtype};
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (student, test) = (
        std::path::Path::new(&cfg.student),
        std::path::Path::new(&cfg.test_data),
    );
    // auto is f32 off CUDA; bf16 is asked for by name.
    assert_eq!(
        eval_dtype(&cfg, &Device::Cpu).unwrap(),
        candle_core::DType::F32
    );
    let bf16 = RunConfig {
        eval_dtype: "bf16".into(),
        ..cfg.clone()
    };
    assert_eq!(
        eval_dtype(&bf16, &Device::Cpu).unwrap(),
        candle_core::DType::BF16
    );
    let load = |dtype| {
        gpu_runner::student::Student::load_with_dtype(student, &Device::Cpu, Some(64), dtype)
            .unwrap()
    };
    let (f32_model, bf16_model) = (
        load(candle_core::DType::F32),
        load(candle_core::DType::BF16),
    );
    let samples = gpu_runner::data::read_samples(test).unwrap();
    let gate = |tolerance| bf16_parity_gate(&f32_model, &bf16_model, &samples, test, tolerance);
    let worst = gate(0.05).unwrap();
    assert!(
        worst > 0.0 && worst <= 0.05,
        "bf16 rounding is visible: {worst}"
    );
    let err = gate(worst / 2.0).unwrap_err().to_string();
    assert!(err.contains("eval_dtype") && err.contains("f32"), "{err}");
    assert!(err.contains(&cfg.test_data), "{err}");
    // A stage asked for bf16 predicts through the gate, close to f32.
    let ctx = gpu_runner::observe::StageContext::silent();
    let (fast, exact) = (dir.path().join("bf16.jsonl"), dir.path().join("f32.jsonl"));
    let n = pipeline::stages::predict(&bf16, student, test, &fast, &Device::Cpu, &ctx).unwrap();
    pipeline::stages::predict(&cfg, student, test, &exact, &Device::Cpu, &ctx).unwrap();
    assert_eq!(n.unit, "pairs");
    let scores = |p: &std::path::Path| gpu_runner::scores::read_scores(p).unwrap();
    let (fast, exact) = (scores(&fast), scores(&exact));
    assert_eq!(fast.len() as u64, n.items);
    for (a, b) in fast.iter().zip(&exact) {
        assert!(
            (a.score - b.score).abs() <= 0.05 * (1.0 + b.score.abs()),
            "{} vs {}",
            a.score,
            b.score
        );
    }
}
