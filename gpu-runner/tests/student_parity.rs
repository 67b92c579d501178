//! Parity of the student with PyTorch/transformers/sentence-transformers, against the goldens
//! written by `parity/make_student_goldens.py` (the tests never run Python).

use std::path::{Path, PathBuf};

use candle_core::Device;
use gpu_runner::schedule::LinearSchedule;
use gpu_runner::student::encode::PairEncoder;
use gpu_runner::student::Student;
use gpu_runner::train::data::{read_triplets, Triplet};
use gpu_runner::train::{train, Grads, TrainConfig, Trainer};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tiny() -> PathBuf {
    root().join("tests/fixtures/tiny-xlmr")
}

fn triplets_file() -> PathBuf {
    root().join("tests/fixtures/triplets.jsonl")
}

fn golden(name: &str) -> Value {
    let path = root().join("tests/goldens").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_rel(got: f64, want: f64, rel: f64, what: &str) {
    let tol = rel * want.abs().max(1e-3);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} (rel tol {rel})"
    );
}

#[test]
fn padded_batch_tokens_and_logits_match_transformers() {
    let g = golden("student_logits.json");
    let pairs = pairs(&g["pairs"]);
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(q, p)| (q.as_str(), p.as_str()))
        .collect();
    let student = Student::load(&tiny(), &Device::Cpu, 512).unwrap();
    for batch in g["batches"].as_array().unwrap() {
        let max_length = batch["max_length"].as_u64().unwrap() as usize;
        let encoder =
            PairEncoder::from_file(&tiny().join("tokenizer.json"), max_length, 1).unwrap();
        let enc = encoder.encode(&refs, &Device::Cpu).unwrap();
        let want_ids: Vec<Vec<u32>> = serde_json::from_value(batch["input_ids"].clone()).unwrap();
        assert_eq!(
            enc.input_ids.to_vec2::<u32>().unwrap(),
            want_ids,
            "max_length {max_length}"
        );
        let want_mask: Vec<Vec<f32>> =
            serde_json::from_value(batch["attention_mask"].clone()).unwrap();
        assert_eq!(enc.attention_mask.to_vec2::<f32>().unwrap(), want_mask);
        let logits = student.logits(&enc).unwrap();
        for (i, (got, want)) in logits.iter().zip(f64s(&batch["logits"])).enumerate() {
            assert!(
                (*got as f64 - want).abs() < 1e-4,
                "pair {i}: {got} vs {want}"
            );
        }
    }
    // Length-sorted batching gives the same logits as one padded batch.
    let sorted = student.score_pairs(&refs, 4).unwrap();
    for (got, want) in sorted.iter().zip(f64s(&g["batches"][0]["logits"])) {
        assert!((*got as f64 - want).abs() < 1e-4);
    }
}

fn trainer_config(settings: &Value, out: &Path) -> TrainConfig {
    let get = |k: &str| settings[k].as_f64().unwrap();
    TrainConfig {
        batch_size: get("batch_size") as usize,
        grad_accum: get("grad_accum") as usize,
        lr: get("lr"),
        warmup_ratio: get("warmup_ratio"),
        weight_decay: get("weight_decay"),
        max_grad_norm: get("max_grad_norm"),
        max_length: get("max_length") as usize,
        dropout: false,
        progress: false,
        ..TrainConfig::new(tiny(), triplets_file(), out.to_path_buf())
    }
}

#[test]
fn two_updates_match_pytorch() {
    let g = golden("student_train.json");
    let settings = &g["settings"];
    let dir = tempfile::tempdir().unwrap();
    let cfg = trainer_config(settings, dir.path());
    let triplets = read_triplets(&triplets_file()).unwrap();
    let mut trainer = Trainer::new(&cfg, &Device::Cpu).unwrap();
    let initial = trainer.parameters().unwrap();
    let updates = settings["updates"].as_u64().unwrap() as usize;
    let schedule = LinearSchedule::new(cfg.lr, updates, cfg.warmup_ratio);
    for (k, want) in (1..=updates).zip(g["steps"].as_array().unwrap()) {
        let mut grads: Grads = Vec::new();
        let mut loss = 0f32;
        for micro in 0..cfg.grad_accum {
            let lo = ((k - 1) * cfg.grad_accum + micro) * cfg.batch_size;
            let batch: Vec<&Triplet> = triplets[lo..lo + cfg.batch_size].iter().collect();
            loss += trainer.accumulate(&batch, &mut grads).unwrap();
        }
        let lr = schedule.lr(k);
        assert_eq!(lr, want["lr"].as_f64().unwrap());
        let norm = trainer.apply_update(grads, lr).unwrap();
        assert_rel(
            loss as f64,
            want["loss"].as_f64().unwrap(),
            1e-5,
            &format!("loss {k}"),
        );
        let want_norm = want["grad_norm"].as_f64().unwrap();
        assert_rel(norm as f64, want_norm, 1e-5, &format!("grad norm {k}"));
        assert!(want_norm > cfg.max_grad_norm, "clipping must be active");
    }
    let params = trainer.parameters().unwrap();
    let weights = g["weights"].as_object().unwrap();
    assert_eq!(weights.len(), params.len());
    for (name, want) in weights {
        let t = params[name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        if name.ends_with("attention.self.key.bias") {
            // Softmax is invariant to the key bias, so its exact gradient is zero and both sides
            // see only rounding noise, which Adam scales up to steps of about ±lr. Only bound it.
            let bound = 3.0 * cfg.lr * updates as f64;
            assert!(
                t.iter().all(|x| (*x as f64).abs() <= bound),
                "{name} moved too far"
            );
            continue;
        }
        let sum: f64 = t.iter().map(|&x| x as f64).sum();
        let abs_sum: f64 = t.iter().map(|&x| (x as f64).abs()).sum();
        let l2 = t.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        assert_rel(
            abs_sum,
            want["abs_sum"].as_f64().unwrap(),
            1e-5,
            &format!("{name} abs_sum"),
        );
        assert_rel(
            l2,
            want["l2"].as_f64().unwrap(),
            1e-5,
            &format!("{name} l2"),
        );
        // A sum can cancel to near zero, so its tolerance is relative to the absolute sum.
        let tol = 1e-5 * want["abs_sum"].as_f64().unwrap();
        assert!(
            (sum - want["sum"].as_f64().unwrap()).abs() <= tol,
            "{name} sum"
        );
        for (got, w) in t.iter().zip(f64s(&want["head"])) {
            assert!(
                (*got as f64 - w).abs() <= 1e-5 * w.abs().max(0.01),
                "{name} head {got} vs {w}"
            );
        }
        let before = initial[name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let delta = t
            .iter()
            .zip(&before)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let want_delta = g["delta_l2"][name].as_f64().unwrap();
        assert!(
            (delta - want_delta).abs() <= 1e-3 * want_delta.max(1e-6),
            "{name} update {delta} vs {want_delta}"
        );
    }
}

#[test]
fn every_parameter_receives_a_nonzero_gradient() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        batch_size: 4,
        grad_accum: 1,
        max_length: 64,
        progress: false,
        ..TrainConfig::new(tiny(), triplets_file(), dir.path().to_path_buf())
    };
    let triplets = read_triplets(&triplets_file()).unwrap();
    let trainer = Trainer::new(&cfg, &Device::Cpu).unwrap();
    trainer.reseed_dropout(1, 1).unwrap();
    let mut grads: Grads = Vec::new();
    let batch: Vec<&Triplet> = triplets[..4].iter().collect();
    trainer.accumulate(&batch, &mut grads).unwrap();
    let vars = trainer.optimizer().vars();
    assert_eq!(grads.len(), vars.len());
    assert_eq!(vars.len(), trainer.config().expected_tensors().len());
    for ((name, _), g) in vars.iter().zip(&grads) {
        let g = g
            .as_ref()
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        let mass = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        if name == "classifier.out_proj.bias" {
            // MarginMSE sees only s(q,pos) − s(q,neg): the shared output bias cancels, so its
            // gradient is exactly zero (in PyTorch too). It must still be in the graph.
            assert_eq!(mass, 0.0);
            continue;
        }
        assert!(
            mass > 0.0 && mass.is_finite(),
            "{name}: gradient mass {mass}"
        );
    }
}

fn cli_config(args: &[Value], out: &Path) -> TrainConfig {
    let mut cfg = TrainConfig {
        progress: false,
        ..TrainConfig::new(tiny(), triplets_file(), out.to_path_buf())
    };
    let args: Vec<&str> = args.iter().map(|a| a.as_str().unwrap()).collect();
    for pair in args.windows(2) {
        match pair[0] {
            "--batch-size" => cfg.batch_size = pair[1].parse().unwrap(),
            "--grad-accum" => cfg.grad_accum = pair[1].parse().unwrap(),
            "--lr" => cfg.lr = pair[1].parse().unwrap(),
            "--warmup-ratio" => cfg.warmup_ratio = pair[1].parse().unwrap(),
            "--max-length" => cfg.max_length = pair[1].parse().unwrap(),
            "--seed" => cfg.seed = pair[1].parse().unwrap(),
            _ => {}
        }
    }
    cfg
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn trained_model_scores_like_crossencoder() {
    let g = golden("student_crossencoder.json");
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(g["args"].as_array().unwrap(), &dir.path().join("out"));
    let summary = train(&cfg, &Device::Cpu).unwrap();
    assert_eq!(summary.steps_done, summary.total_steps);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.out.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["sentence_transformers"]["activation_fn"],
        "torch.nn.modules.activation.Sigmoid"
    );
    let pairs = pairs(&g["pairs"]);
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(q, p)| (q.as_str(), p.as_str()))
        .collect();
    let student = Student::load(&cfg.out, &Device::Cpu, 512).unwrap();
    let scores = student.score_pairs(&refs, 4).unwrap();
    for (got, want) in scores.iter().zip(f64s(&g["scores"])) {
        assert!(
            (sigmoid(*got) as f64 - want).abs() < 1e-4,
            "{got} vs {want}"
        );
    }
    let log = std::fs::read_to_string(cfg.out.join("train_log.jsonl")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want_log = g["train_log"].as_array().unwrap();
    assert_eq!(lines.len(), want_log.len());
    for (got, want) in lines.iter().zip(want_log) {
        assert_eq!(got["step"], want["step"]);
        assert_eq!(got["lr"], want["lr"]);
        let (l, w) = (
            got["loss"].as_f64().unwrap(),
            want["loss"].as_f64().unwrap(),
        );
        assert_rel(l, w, 1e-5, "logged loss");
    }
}
