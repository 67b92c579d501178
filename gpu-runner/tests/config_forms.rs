//! Model folders saved by transformers 4.x and 5.x: both `config.json` forms of each family load
//! to the same settings, RoPE types other than `default` are refused by key and value, a teacher
//! in the 5.x form scores exactly as the 4.x form of the same weights (through `score` and a
//! whole pipeline), and what the crate writes keeps the form both versions read.

mod teacher_support;

use std::path::{Path, PathBuf};

use candle_core::Device;
use distillery_api::{RunConfig, StageKind};
use gpu_runner::demo::{write_demo_data, DemoOptions};
use gpu_runner::scores::read_scores;
use gpu_runner::student::new_model::{write_new_model, Preset};
use gpu_runner::student::xlm_roberta;
use gpu_runner::teacher::config::Config as Qwen3Config;
use gpu_runner::teacher::{Teacher, TeacherOptions};
use serde_json::{json, Value};

/// Qwen3-Reranker-0.6B's `config.json` on the hub, as transformers 4.51 wrote it.
const QWEN3_4X: &str = r#"{
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 1024,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "max_position_embeddings": 40960,
  "max_window_layers": 28,
  "model_type": "qwen3",
  "num_attention_heads": 16,
  "num_hidden_layers": 28,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151669
}"#;

/// The same model saved again by transformers 5.
const QWEN3_5X: &str = r#"{
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "dtype": "bfloat16",
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 1024,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_types": [
    "full_attention", "full_attention", "full_attention", "full_attention", "full_attention",
    "full_attention", "full_attention", "full_attention", "full_attention", "full_attention",
    "full_attention", "full_attention", "full_attention", "full_attention", "full_attention",
    "full_attention", "full_attention", "full_attention", "full_attention", "full_attention",
    "full_attention", "full_attention", "full_attention", "full_attention", "full_attention",
    "full_attention", "full_attention", "full_attention"
  ],
  "max_position_embeddings": 40960,
  "max_window_layers": 28,
  "model_type": "qwen3",
  "num_attention_heads": 16,
  "num_hidden_layers": 28,
  "num_key_value_heads": 8,
  "pad_token_id": null,
  "rms_norm_eps": 1e-06,
  "rope_parameters": {
    "rope_theta": 1000000,
    "rope_type": "default"
  },
  "sliding_window": null,
  "tie_word_embeddings": true,
  "transformers_version": "5.25.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151669
}"#;

/// bge-reranker-v2-m3's `config.json` on the hub, as transformers 4.38 wrote it.
const XLMR_4X: &str = r#"{
  "architectures": ["XLMRobertaForSequenceClassification"],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": 0,
  "classifier_dropout": null,
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 1024,
  "id2label": {"0": "LABEL_0"},
  "initializer_range": 0.02,
  "intermediate_size": 4096,
  "label2id": {"LABEL_0": 0},
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 8194,
  "model_type": "xlm-roberta",
  "num_attention_heads": 16,
  "num_hidden_layers": 24,
  "output_past": true,
  "pad_token_id": 1,
  "position_embedding_type": "absolute",
  "torch_dtype": "float32",
  "transformers_version": "4.38.1",
  "type_vocab_size": 1,
  "use_cache": true,
  "vocab_size": 250002
}"#;

/// The same settings as transformers 5 writes a new `XLMRobertaConfig`: `dtype`, no
/// `position_embedding_type`, and the decoder and tying flags.
const XLMR_5X: &str = r#"{
  "add_cross_attention": false,
  "architectures": ["XLMRobertaForSequenceClassification"],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": 0,
  "classifier_dropout": null,
  "dtype": "float32",
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 1024,
  "id2label": {"0": "LABEL_0"},
  "initializer_range": 0.02,
  "intermediate_size": 4096,
  "is_decoder": false,
  "label2id": {"LABEL_0": 0},
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 8194,
  "model_type": "xlm-roberta",
  "num_attention_heads": 16,
  "num_hidden_layers": 24,
  "pad_token_id": 1,
  "tie_word_embeddings": true,
  "transformers_version": "5.25.0",
  "type_vocab_size": 1,
  "use_cache": true,
  "vocab_size": 250002
}"#;

/// A `RobertaConfig` for sequence classification, as transformers 4.5x writes it.
const ROBERTA_4X: &str = r#"{
  "architectures": ["RobertaForSequenceClassification"],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": 0,
  "classifier_dropout": null,
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "id2label": {"0": "LABEL_0"},
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "label2id": {"LABEL_0": 0},
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "roberta",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 1,
  "position_embedding_type": "absolute",
  "torch_dtype": "float32",
  "transformers_version": "4.51.3",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 50265
}"#;

/// The same model saved again by transformers 5.
const ROBERTA_5X: &str = r#"{
  "add_cross_attention": false,
  "architectures": ["RobertaForSequenceClassification"],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": 0,
  "classifier_dropout": null,
  "dtype": "float32",
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "id2label": {"0": "LABEL_0"},
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "is_decoder": false,
  "label2id": {"LABEL_0": 0},
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "roberta",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 1,
  "position_embedding_type": "absolute",
  "tie_word_embeddings": true,
  "transformers_version": "5.25.0",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 50265
}"#;

fn qwen3(text: &str) -> gpu_runner::Result<Qwen3Config> {
    Qwen3Config::parse(Path::new("/m/config.json"), text.as_bytes())
}

fn student_config(text: &str) -> xlm_roberta::Config {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), text).unwrap();
    gpu_runner::student::load_config(dir.path()).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `config` of a 4.x-form Qwen3 file rewritten as transformers 5 writes it: RoPE settings in
/// `rope_parameters`, `dtype`, `layer_types` and the null special-token ids.
fn qwen3_as_5x(mut config: Value) -> Value {
    let map = config.as_object_mut().unwrap();
    let theta = map.remove("rope_theta").unwrap();
    assert_eq!(map.remove("rope_scaling"), Some(Value::Null));
    let dtype = map.remove("torch_dtype").unwrap();
    let layers = map["num_hidden_layers"].as_u64().unwrap() as usize;
    map.insert(
        "rope_parameters".into(),
        json!({"rope_theta": theta, "rope_type": "default"}),
    );
    map.insert("dtype".into(), dtype);
    map.insert("layer_types".into(), json!(vec!["full_attention"; layers]));
    map.insert("pad_token_id".into(), Value::Null);
    map.insert("transformers_version".into(), "5.25.0".into());
    config
}

/// A copy of the tiny teacher whose `config.json` is `edit` of the original.
fn tiny_teacher_copy(to: &Path, edit: impl FnOnce(Value) -> Value) -> PathBuf {
    let from = teacher_support::tiny_model_dir();
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let config = edit(read_json(&from.join("config.json")));
    std::fs::write(
        to.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    to.to_path_buf()
}

/// Runs `gpu-runner score` without the cache; returns the score file's text.
fn score(teacher: &Path, input: &Path, out: &Path, max_length: usize) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gpu-runner"))
        .args(["score", "--no-cache", "--batch-size", "3", "--teacher"])
        .arg(teacher)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .args(["--max-length", &max_length.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn qwen3_configs_of_transformers_4_and_5_load_to_the_same_settings() {
    let old = qwen3(QWEN3_4X).unwrap();
    let new = qwen3(QWEN3_5X).unwrap();
    assert_eq!(old, new);
    assert_eq!(old.rope_theta, 1e6);
    assert_eq!(old.dtype.as_deref(), Some("bfloat16"));
    assert!(old.tie_word_embeddings);
    assert_eq!((old.head_dim, old.num_key_value_heads), (128, 8));

    // Without any RoPE base both versions run θ = 10,000.
    let mut bare: Value = serde_json::from_str(QWEN3_5X).unwrap();
    bare["rope_parameters"] = json!({"rope_type": "default"});
    assert_eq!(qwen3(&bare.to_string()).unwrap().rope_theta, 10_000.0);
}

#[test]
fn xlm_roberta_and_roberta_configs_of_both_forms_load_to_the_same_settings() {
    let old = student_config(XLMR_4X);
    let new = student_config(XLMR_5X);
    assert_eq!(old, new);
    assert_eq!(new.position_embedding_type, "absolute");
    assert_eq!(new.dtype.as_deref(), Some("float32"));
    let bge = xlm_roberta::Config {
        dtype: Some("float32".into()),
        id2label: old.id2label.clone(),
        ..xlm_roberta::Config::bge_reranker_v2_m3()
    };
    assert_eq!(old, bge);

    let old = student_config(ROBERTA_4X);
    assert_eq!(old, student_config(ROBERTA_5X));
    assert_eq!(
        (
            old.model_type.as_str(),
            old.hidden_size,
            old.type_vocab_size
        ),
        ("roberta", 768, 2)
    );
}

#[test]
fn rope_types_other_than_default_are_refused_with_file_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let yarn = tiny_teacher_copy(&dir.path().join("yarn"), |c| {
        let mut c = qwen3_as_5x(c);
        c["rope_parameters"] = json!({"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6,
            "original_max_position_embeddings": 32768});
        c
    });
    let err = match Teacher::load(&yarn, TeacherOptions::default()) {
        Ok(_) => panic!("a yarn teacher loaded"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        err,
        format!(
            "{}: rope_parameters.rope_type: \"yarn\" is not supported (only \"default\")",
            yarn.join("config.json").display()
        )
    );

    // The 4.x spelling, through the command line.
    let linear = tiny_teacher_copy(&dir.path().join("linear"), |mut c| {
        c["rope_scaling"] = json!({"type": "linear", "factor": 2.0});
        c
    });
    let data = dir.path().join("data.jsonl");
    std::fs::write(
        &data,
        "{\"query\": \"q\", \"positive\": [\"p\"], \"negative\": [\"n\"]}\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gpu-runner"))
        .args(["score", "--no-cache", "--teacher"])
        .arg(&linear)
        .arg("--input")
        .arg(&data)
        .arg("--output")
        .arg(dir.path().join("out.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(
            "config.json: rope_scaling.type: \"linear\" is not supported (only \"default\")"
        ),
        "{stderr}"
    );

    let err = qwen3(&QWEN3_5X.replace("\"default\"", "\"dynamic\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"dynamic\" is not supported"), "{err}");
}

#[test]
fn a_transformers_5_teacher_scores_like_its_4x_form_in_score_and_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let v5 = tiny_teacher_copy(&dir.path().join("teacher-5x"), qwen3_as_5x);
    let v4 = teacher_support::tiny_model_dir();
    let config = read_json(&v5.join("config.json"));
    assert!(config.get("rope_theta").is_none() && config.get("torch_dtype").is_none());

    let opts = DemoOptions {
        train_queries: 12,
        test_queries: 6,
        ..DemoOptions::default()
    };
    let (train, test) = write_demo_data(&dir.path().join("data"), &opts).unwrap();
    let max_length = 256;
    let old = score(v4, &test, &dir.path().join("old.jsonl"), max_length);
    let new = score(&v5, &test, &dir.path().join("new.jsonl"), max_length);
    assert_eq!(old, new, "the 5.x form scores differently");

    write_new_model(Preset::Tiny, &dir.path().join("student"), None, 0).unwrap();
    let cfg = RunConfig {
        teacher_kind: "qwen3-reranker".into(),
        teacher: v5.display().to_string(),
        student: dir.path().join("student").display().to_string(),
        train_data: train.display().to_string(),
        test_data: test.display().to_string(),
        teacher_max_length: max_length as u32,
        epochs: 1,
        batch_size: 16,
        grad_accum: 1,
        max_length: 64,
        ..RunConfig::default()
    };
    let run = dir.path().join("run");
    let report = gpu_runner::pipeline::run(&cfg, &run, &Device::Cpu).unwrap();
    assert!(report.teacher["map"].as_f64().is_some_and(f64::is_finite));
    let (_, stage) = gpu_runner::pipeline::scoring_stage(&cfg, StageKind::ScoreTest).unwrap();
    let piped = read_scores(&run.join("stages").join(stage).join("scores.jsonl")).unwrap();
    let direct = read_scores(&dir.path().join("old.jsonl")).unwrap();
    assert_eq!(piped.len(), direct.len());
    for (p, d) in piped.iter().zip(&direct) {
        assert_eq!((&p.query, &p.passage), (&d.query, &d.passage));
        assert!(
            (p.score - d.score).abs() < 1e-5,
            "{} vs {}",
            p.score,
            d.score
        );
    }
}

#[test]
fn written_configs_keep_the_form_transformers_4_and_5_both_read() {
    // transformers 4.x reads neither `dtype` nor `rope_parameters`; 5.x still reads
    // `torch_dtype` and a top-level `rope_theta`.
    let teacher = read_json(&teacher_support::tiny_model_dir().join("config.json"));
    assert_eq!(teacher["rope_theta"], json!(1e6));
    assert_eq!(teacher["rope_scaling"], Value::Null);
    assert_eq!(teacher["torch_dtype"], "float32");
    assert!(teacher.get("rope_parameters").is_none() && teacher.get("dtype").is_none());

    let dir = tempfile::tempdir().unwrap();
    write_new_model(Preset::Tiny, dir.path(), None, 0).unwrap();
    let student = read_json(&dir.path().join("config.json"));
    assert_eq!(student["torch_dtype"], "float32");
    for key in ["dtype", "rope_theta", "rope_scaling", "rope_parameters"] {
        assert!(student.get(key).is_none(), "{key} in {student}");
    }
    let again = gpu_runner::student::load_config(dir.path()).unwrap();
    assert_eq!(again.dtype.as_deref(), Some("float32"));
}
