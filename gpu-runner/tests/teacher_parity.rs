//! Parity with transformers' `Qwen3ForCausalLM` on the tiny teacher (goldens made by
//! `gpu-runner/parity/make_teacher_goldens.py`): same prompt ids, z_yes − z_no within 1e-4.

mod teacher_support;

use gpu_runner::teacher::Batching;
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    seed: u64,
    config_sha256: String,
    prefix_ids: Vec<u32>,
    suffix_ids: Vec<u32>,
    pairs: Vec<GoldenPair>,
}

#[derive(Deserialize)]
struct GoldenPair {
    query: String,
    passage: String,
    ids: Vec<u32>,
    score: f32,
}

fn golden() -> Golden {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/goldens/teacher_tiny.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn tiny_teacher_matches_transformers_within_1e4() {
    let golden = golden();
    assert_eq!(golden.seed, 0, "the test model is written with seed 0");
    let config = std::fs::read(teacher_support::tiny_model_dir().join("config.json")).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&config))
    };
    assert_eq!(
        sha, golden.config_sha256,
        "the tiny preset changed: regenerate the goldens"
    );

    let teacher = teacher_support::tiny_teacher();
    assert_eq!(teacher.prompt().prefix_ids(), golden.prefix_ids);
    assert_eq!(teacher.prompt().suffix_ids(), golden.suffix_ids);
    let pairs: Vec<(&str, &str)> = golden
        .pairs
        .iter()
        .map(|p| (p.query.as_str(), p.passage.as_str()))
        .collect();
    for (p, (q, d)) in golden.pairs.iter().zip(&pairs) {
        assert_eq!(
            teacher.prompt().build(q, d).unwrap(),
            p.ids,
            "prompt ids of {q:?}"
        );
    }
    let scores = teacher.score_pairs(&pairs, Batching::Tokens(4096)).unwrap();
    let mut worst = 0.0f32;
    for (p, s) in golden.pairs.iter().zip(&scores) {
        worst = worst.max((s - p.score).abs());
    }
    eprintln!(
        "max |rust − transformers| over {} pairs: {worst:e}",
        scores.len()
    );
    assert!(
        worst <= 1e-4,
        "max |rust − transformers| = {worst}; scores {scores:?}"
    );
    let spread = scores.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(
        spread > 0.1,
        "goldens must not be trivially small: {scores:?}"
    );
}
