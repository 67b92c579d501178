//! `--forward joint` (one padded pass of the 2B pairs) against the reference's two passes:
//! same loss and, after two optimizer updates, the same weights up to float rounding.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use gpu_runner::student::ops::Mode;
use gpu_runner::train::data::{read_triplets, Triplet};
use gpu_runner::train::{Forward, TrainConfig, Trainer};

/// Parameters whose MarginMSE gradient is zero in exact arithmetic: the classifier's output bias
/// adds to both scores of a triplet (∂L/∂b = Σd − Σd), and a key bias shifts every score of a
/// query by the same `q·b`, which softmax removes. Their computed gradients are rounding noise,
/// which AdamW (invariant to the gradient's scale) turns into steps of up to `lr`, so they are
/// checked against that bound, not against each other.
fn zero_gradient(name: &str) -> bool {
    name == "classifier.out_proj.bias" || name.ends_with("attention.self.key.bias")
}

/// Learning rate of the test updates.
const LR: f64 = 1e-3;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A trainer on the tiny fixture model, dropout off so both modes see the same computation.
fn trainer(forward: Forward) -> Trainer {
    let cfg = TrainConfig {
        dropout: false,
        forward,
        lr: LR,
        max_length: 64,
        grad_accum: 1,
        ..TrainConfig::new(
            fixture("tiny-xlmr"),
            fixture("triplets.jsonl"),
            PathBuf::from("unused"),
        )
    };
    Trainer::new(&cfg, &Device::Cpu).unwrap()
}

fn loss(trainer: &Trainer, batch: &[&Triplet]) -> f32 {
    trainer
        .margin_mse(batch, Mode::Eval)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn relative(a: f32, b: f32) -> f32 {
    (a - b).abs() / a.abs().max(b.abs()).max(f32::MIN_POSITIVE)
}

/// Two updates of four triplets each; returns the parameters afterwards.
fn two_updates(trainer: &mut Trainer, triplets: &[Triplet]) -> HashMap<String, Tensor> {
    for chunk in triplets.chunks(4).take(2) {
        let batch: Vec<&Triplet> = chunk.iter().collect();
        let mut grads = Vec::new();
        trainer.accumulate(&batch, &mut grads).unwrap();
        trainer.apply_update(grads, LR).unwrap();
    }
    trainer.parameters().unwrap()
}

#[test]
fn joint_forward_matches_separate_loss_and_updates() {
    let triplets = read_triplets(&fixture("triplets.jsonl")).unwrap();
    let batch: Vec<&Triplet> = triplets.iter().take(4).collect();
    // The pairs differ in length, so the joint pass pads rows the separate passes do not.
    let (mut separate, mut joint) = (trainer(Forward::Separate), trainer(Forward::Joint));

    let (ls, lj) = (loss(&separate, &batch), loss(&joint, &batch));
    assert!(ls > 0.1, "loss {ls} too small to compare");
    assert!(relative(ls, lj) <= 1e-6, "separate {ls} vs joint {lj}");
    // The tolerance tells the halves apart: positives and negatives swapped give another loss.
    let swapped: Vec<Triplet> = batch
        .iter()
        .map(|t| Triplet {
            positive: t.negative.clone(),
            negative: t.positive.clone(),
            ..(*t).clone()
        })
        .collect();
    let swapped: Vec<&Triplet> = swapped.iter().collect();
    let lw = loss(&joint, &swapped);
    assert!(relative(ls, lw) > 1e-3, "swapped {lw} vs separate {ls}");

    let before = separate.parameters().unwrap();
    let (ws, wj) = (
        two_updates(&mut separate, &triplets),
        two_updates(&mut joint, &triplets),
    );
    assert_eq!(joint.optimizer().step_count(), 2);
    let mut moved = 0usize;
    for (name, a) in &ws {
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (a, b, w0) = (values(a), values(&wj[name]), values(&before[name]));
        if zero_gradient(name) {
            for (&x, &x0) in a.iter().chain(&b).zip(w0.iter().cycle()) {
                let step = (x - x0).abs() as f64;
                assert!(step <= 2.0 * LR * 1.001, "{name}: {x0} → {x}");
            }
            continue;
        }
        // Relative to the tensor's largest weight: a weight that starts at 0 (a bias) holds
        // only its two AdamW steps, whose relative rounding is the gradient's.
        let scale = a.iter().chain(&b).fold(0f32, |m, x| m.max(x.abs()));
        for (i, ((&x, &y), &x0)) in a.iter().zip(&b).zip(&w0).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * scale,
                "{name}[{i}]: separate {x} vs joint {y} (largest |w| {scale})"
            );
            moved += usize::from(x != x0);
        }
    }
    assert!(moved > 1000, "only {moved} weights changed in two updates");
}
