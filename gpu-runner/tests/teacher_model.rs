//! The tiny random teacher on CPU: prefix reuse, batching, canary, load-time checks.

mod teacher_support;

use candle_core::DType;
use gpu_runner::teacher::prompt::SpecialTokens;
use gpu_runner::teacher::{Batching, CanaryReport, Teacher, TeacherOptions};

const PAIRS: [(&str, &str); 5] = [
    ("How do I reverse a list in Python?", "Use list.reverse() or reversed(lst)."),
    ("How do I reverse a list in Python?", "Chocolate cake"),
    ("Convert a String to an int in Java", "Integer.parseInt(s) converts a String to an int, and Integer.valueOf(s) returns a boxed Integer."),
    ("", "empty query"),
    ("如何在Python中读取文件？", "使用 open() 函数。"),
];

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x.is_finite() && y.is_finite(), "{what}[{i}]: {x} vs {y}");
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

fn prefix_reuse_matches_full_prompts(teacher: &Teacher, tol: f32) {
    let b = teacher.prompt();
    let full: Vec<Vec<u32>> = PAIRS.iter().map(|(q, p)| b.build(q, p).unwrap()).collect();
    let rests: Vec<Vec<u32>> = PAIRS
        .iter()
        .map(|(q, p)| teacher.encode_pair(q, p).unwrap())
        .collect();
    let full_refs: Vec<&[u32]> = full.iter().map(Vec::as_slice).collect();
    let rest_refs: Vec<&[u32]> = rests.iter().map(Vec::as_slice).collect();
    let without = teacher.score_full(&full_refs).unwrap();
    let with = teacher.score_encoded(&rest_refs).unwrap();
    assert_close(&with, &without, tol, "prefix reuse vs none");
    assert!(
        without.windows(2).any(|w| w[0] != w[1]),
        "scores differ between pairs: {without:?}"
    );
}

#[test]
fn prefix_reuse_equals_no_reuse_in_f32() {
    prefix_reuse_matches_full_prompts(&teacher_support::tiny_teacher(), 1e-5);
}

#[test]
fn prefix_reuse_equals_no_reuse_in_bf16() {
    let options = TeacherOptions {
        dtype: DType::BF16,
        ..TeacherOptions::default()
    };
    let teacher = Teacher::load(teacher_support::tiny_model_dir(), options).unwrap();
    prefix_reuse_matches_full_prompts(&teacher, 5e-2);
}

#[test]
fn batched_scores_equal_single_scores() {
    let teacher = teacher_support::tiny_teacher();
    let batched = teacher.score_pairs(&PAIRS, Batching::Size(8)).unwrap();
    let single = teacher.score_pairs(&PAIRS, Batching::Size(1)).unwrap();
    let by_tokens = teacher.score_pairs(&PAIRS, Batching::Tokens(200)).unwrap();
    assert_close(&batched, &single, 1e-5, "batch vs single");
    assert_close(&by_tokens, &single, 1e-5, "token budget vs single");
}

#[test]
fn canary_passes_on_the_tiny_model_and_catches_broken_scores() {
    let report = teacher_support::tiny_teacher().canary().unwrap();
    assert_eq!((report.relevant.len(), report.irrelevant.len()), (3, 3));
    let nan = CanaryReport {
        relevant: vec![1.0, f32::NAN],
        irrelevant: vec![0.0],
    };
    assert!(nan.check().unwrap_err().to_string().contains("NaN"));
    let flat = CanaryReport {
        relevant: vec![0.5; 3],
        irrelevant: vec![0.5; 3],
    };
    assert!(flat
        .check()
        .unwrap_err()
        .to_string()
        .contains("every built-in pair"));
}

#[test]
fn identity_follows_config_headers_and_weights() {
    let a = teacher_support::tiny_teacher();
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors.index.json",
    ] {
        std::fs::copy(
            teacher_support::tiny_model_dir().join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    let index = std::fs::read_to_string(dir.path().join("model.safetensors.index.json")).unwrap();
    assert!(index.contains("model-00002-of-00002.safetensors"));
    for f in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        std::fs::copy(
            teacher_support::tiny_model_dir().join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    let b = Teacher::load(dir.path(), TeacherOptions::default()).unwrap();
    assert_eq!(a.identity(), b.identity());
    // The identity is the config, the safetensors headers and the weights: a config change
    // must show, and so must other weights of the same shapes (or cached scores would mix).
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    cfg["rope_theta"] = serde_json::json!(10000.0);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let c = Teacher::load(dir.path(), TeacherOptions::default()).unwrap();
    assert_ne!(a.identity(), c.identity());
    let shard = dir.path().join("model-00002-of-00002.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let d = Teacher::load(dir.path(), TeacherOptions::default()).unwrap();
    assert_ne!(c.identity(), d.identity());
}

#[test]
fn a_tokenizer_without_the_special_tokens_is_rejected() {
    let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
        "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
        "model":{"type":"WordLevel","vocab":{"yes":0,"no":1,"[UNK]":2},"unk_token":"[UNK]"}}"#;
    let tok: tokenizers::Tokenizer = json.parse().unwrap();
    let err = SpecialTokens::check(&tok).unwrap_err().to_string();
    assert!(
        err.contains("<|im_start|>") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn canary_stops_a_teacher_that_produces_nan() {
    let dir = tempfile::tempdir().unwrap();
    let src = teacher_support::tiny_model_dir();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let shard = dir.path().join("model-00001-of-00002.safetensors");
    let mut tensors = candle_core::safetensors::load(&shard, &candle_core::Device::Cpu).unwrap();
    let norm = tensors.get_mut("model.norm.weight").unwrap();
    *norm = (norm.clone() * f64::NAN).unwrap();
    candle_core::safetensors::save(&tensors, &shard).unwrap();
    let teacher = Teacher::load(dir.path(), TeacherOptions::default()).unwrap();
    let err = teacher.canary().unwrap_err().to_string();
    assert!(
        err.contains("canary failed") && err.contains("NaN"),
        "{err}"
    );
}
