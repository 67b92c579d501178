//! `--forward joint` (one padded pass of the 2B pairs) against the reference's two passes:
//! same loss and, after two optimizer updates, the same weights up to float rounding.

mod train_support;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use gpu_runner::student::ops::Mode;
use gpu_runner::train::data::{read_triplets, Triplet};
use gpu_runner::train::{Forward, TrainConfig, Trainer};
use train_support::{assert_same_weights, fixture, LR};

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
    let moved = assert_same_weights(&ws, &wj, &before, 1e-5);
    assert!(moved > 1000, "only {moved} weights changed in two updates");
}
