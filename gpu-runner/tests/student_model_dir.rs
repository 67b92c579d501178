//! Model directories: `new-model` output, loading errors, and exact `--resume`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use gpu_runner::student::new_model::{write_new_model, Preset};
use gpu_runner::student::Student;
use gpu_runner::train::{train, TrainConfig};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-xlmr")
}

fn triplets_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/triplets.jsonl")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn load_err(dir: &Path) -> String {
    match Student::load(dir, &Device::Cpu, 64) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn new_model_tiny_reproduces_the_committed_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_new_model(Preset::Tiny, dir.path(), None, 1).unwrap();
    assert_eq!(cfg.hidden_size, 32);
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        let got = std::fs::read(dir.path().join(file)).unwrap();
        let want = std::fs::read(tiny().join(file)).unwrap();
        assert!(got == want, "{file} differs from the committed fixture");
    }
    let student = Student::load(dir.path(), &Device::Cpu, 64).unwrap();
    let scores = student
        .score_pairs(&[("how to sort", "use sorted")], 8)
        .unwrap();
    assert!(scores[0].is_finite());
}

#[test]
fn unusable_directories_name_the_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("config.json"), "{err}");

    let m = dir.path().join("m");
    copy_dir(&tiny(), &m);
    let config = std::fs::read_to_string(m.join("config.json")).unwrap();
    std::fs::write(
        m.join("config.json"),
        config.replace("XLMRobertaForSequenceClassification", "GPT2LMHeadModel"),
    )
    .unwrap();
    let err = load_err(&m);
    assert!(
        err.contains("config.json") && err.contains("architectures"),
        "{err}"
    );

    std::fs::write(
        m.join("config.json"),
        config.replace("\"intermediate_size\": 64", "\"intermediate_size\": 48"),
    )
    .unwrap();
    let err = load_err(&m);
    assert!(
        err.contains("model.safetensors")
            && err.contains("roberta.encoder.layer.0.intermediate.dense.weight")
            && err.contains("shape"),
        "{err}"
    );

    std::fs::write(
        m.join("config.json"),
        config.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"),
    )
    .unwrap();
    let err = load_err(&m);
    assert!(
        err.contains("model.safetensors")
            && err.contains("roberta.encoder.layer.2.")
            && err.contains("missing"),
        "{err}"
    );

    std::fs::write(m.join("config.json"), &config).unwrap();
    std::fs::remove_file(m.join("tokenizer.json")).unwrap();
    let err = load_err(&m);
    assert!(err.contains("tokenizer.json"), "{err}");

    std::fs::remove_file(m.join("model.safetensors")).unwrap();
    let err = load_err(&m);
    assert!(err.contains("model.safetensors.index.json"), "{err}");
}

#[test]
fn sharded_weights_load_through_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    copy_dir(&tiny(), &m);
    let tensors =
        candle_core::safetensors::load(m.join("model.safetensors"), &Device::Cpu).unwrap();
    std::fs::remove_file(m.join("model.safetensors")).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let subset: std::collections::HashMap<&str, candle_core::Tensor> = part
            .iter()
            .map(|n| (n.as_str(), tensors[*n].clone()))
            .collect();
        candle_core::safetensors::save(&subset, m.join(shard)).unwrap();
        for n in part {
            weight_map.insert(n.to_string(), shard.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(m.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let pairs = [("how to sort a list", "sorted(list)"), ("a", "b")];
    let sharded = Student::load(&m, &Device::Cpu, 64)
        .unwrap()
        .score_pairs(&pairs, 2)
        .unwrap();
    let single = Student::load(&tiny(), &Device::Cpu, 64)
        .unwrap()
        .score_pairs(&pairs, 2)
        .unwrap();
    assert_eq!(sharded, single);

    std::fs::remove_file(m.join("model-00002-of-00002.safetensors")).unwrap();
    let err = load_err(&m);
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
}

fn small_run(out: &Path) -> TrainConfig {
    TrainConfig {
        batch_size: 2,
        grad_accum: 2,
        epochs: 2,
        lr: 1e-3,
        max_length: 64,
        seed: 5,
        progress: false,
        ..TrainConfig::new(tiny(), triplets_file(), out.to_path_buf())
    }
}

fn losses(out: &Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(out.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap(),
                v["grad_norm"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn resume_continues_exactly_with_dropout_and_shuffle() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let summary = train(&small_run(&straight), &Device::Cpu).unwrap();
    // 10 triplets, batch 2 → 5 micro-batches → 3 updates per epoch, 2 epochs.
    assert_eq!(summary.total_steps, 6);

    let resumed = dir.path().join("resumed");
    let first = TrainConfig {
        stop_after: Some(4),
        ..small_run(&resumed)
    };
    assert_eq!(train(&first, &Device::Cpu).unwrap().steps_done, 4);
    assert!(resumed.join("checkpoint-4/optimizer.safetensors").is_file());
    assert!(!resumed.join("model.safetensors").exists());
    let second = TrainConfig {
        resume: true,
        ..small_run(&resumed)
    };
    assert_eq!(train(&second, &Device::Cpu).unwrap().steps_done, 6);

    let a = std::fs::read(straight.join("model.safetensors")).unwrap();
    let b = std::fs::read(resumed.join("model.safetensors")).unwrap();
    assert!(a == b, "resumed weights differ from an uninterrupted run");
    assert_eq!(losses(&straight), losses(&resumed));

    // Changed settings are refused on resume.
    let changed = TrainConfig {
        resume: true,
        lr: 5e-4,
        stop_after: None,
        ..small_run(&resumed)
    };
    std::fs::remove_file(resumed.join("model.safetensors")).unwrap();
    let err = train(&changed, &Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("trainer_state.json") && err.contains("settings differ"),
        "{err}"
    );
}

#[test]
fn predict_writes_logits_in_flattened_teacher_score_order() {
    use gpu_runner::student::predict::{predict_file, PredictConfig};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("test.jsonl");
    std::fs::write(
        &data,
        concat!(
            r#"{"query": "how to sort a list", "positive": ["sorted(list)"], "negative": ["java null", "a much longer passage about python lists and sorting them"]}"#,
            "\n",
            r#"{"query": "git undo commit", "positive": ["git reset --soft HEAD~1", "git revert"], "negative": []}"#,
            "\n"
        ),
    )
    .unwrap();
    let output = dir.path().join("scores.jsonl");
    let cfg = PredictConfig {
        batch_size: 2,
        max_length: None,
        dtype: candle_core::DType::F32,
    };
    let mut seen = 0;
    let n = predict_file(&tiny(), &data, &output, &cfg, &Device::Cpu, |k| seen += k).unwrap();
    assert_eq!((n, seen), (5, 5));
    let records = gpu_runner::scores::read_scores(&output).unwrap();
    let order: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.query.as_str(), r.passage.as_str()))
        .collect();
    assert_eq!(order[1], ("how to sort a list", "java null"));
    assert_eq!(order[3], ("git undo commit", "git reset --soft HEAD~1"));
    let student = Student::load(&tiny(), &Device::Cpu, None).unwrap();
    let want = student.score_pairs(&order, 1).unwrap();
    for (r, w) in records.iter().zip(&want) {
        assert!((r.score - *w as f64).abs() < 1e-5, "{} vs {w}", r.score);
    }
    // bf16 matmuls: the same order, logits within bf16 rounding of f32.
    let bf16_output = dir.path().join("scores-bf16.jsonl");
    let cfg = PredictConfig {
        dtype: candle_core::DType::BF16,
        ..cfg
    };
    predict_file(&tiny(), &data, &bf16_output, &cfg, &Device::Cpu, |_| {}).unwrap();
    let bf16 = gpu_runner::scores::read_scores(&bf16_output).unwrap();
    let scale = want.iter().fold(0f32, |m, w| m.max(w.abs())) as f64;
    for (r, w) in bf16.iter().zip(&want) {
        assert!(
            (r.score - *w as f64).abs() < 5e-2 * scale.max(1.0),
            "bf16 {} vs f32 {w}",
            r.score
        );
    }
}
