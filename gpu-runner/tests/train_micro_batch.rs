//! A training micro-batch other than the reference's (`micro_batch`, `sort_by_length`) changes how
//! an update's triplets go through the student, not the update: after a whole `train` run the
//! weights equal the reference loop's up to float rounding.

mod train_support;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use gpu_runner::train::{train, Forward, TrainConfig};
use train_support::{assert_same_weights, fixture, values, zero_gradient, LR};

/// Trains the tiny fixture for one epoch of 10 triplets at 2 × 4 (two updates: 8 triplets,
/// then a short one of 2) and returns the final weights.
fn trained(
    out: &Path,
    micro_batch: Option<usize>,
    sort_by_length: bool,
) -> HashMap<String, Tensor> {
    let cfg = TrainConfig {
        dropout: false,
        forward: Forward::Separate,
        lr: LR,
        warmup_ratio: 0.0,
        max_length: 64,
        batch_size: 2,
        grad_accum: 4,
        micro_batch,
        sort_by_length,
        progress: false,
        ..TrainConfig::new(
            fixture("tiny-xlmr"),
            fixture("triplets.jsonl"),
            out.to_path_buf(),
        )
    };
    let summary = train(&cfg, &Device::Cpu).unwrap();
    assert_eq!((summary.steps_done, summary.triplets_seen), (2, 10));
    candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn micro_batches_and_length_sorting_give_the_reference_update() {
    let dir = tempfile::tempdir().unwrap();
    let before = candle_core::safetensors::load(
        fixture("tiny-xlmr").join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let reference = trained(&dir.path().join("reference"), None, false);
    let one_pass = trained(&dir.path().join("micro8"), Some(8), false);
    let sorted = trained(&dir.path().join("micro4-sorted"), Some(4), true);
    assert!(assert_same_weights(&reference, &one_pass, &before, 1e-4) > 1000);
    assert!(assert_same_weights(&reference, &sorted, &before, 1e-4) > 1000);

    // The comparison can fail: a different learning rate is a different model.
    let other = {
        let out = dir.path().join("other");
        let cfg = TrainConfig {
            dropout: false,
            forward: Forward::Separate,
            lr: LR * 2.0,
            warmup_ratio: 0.0,
            max_length: 64,
            batch_size: 2,
            grad_accum: 4,
            progress: false,
            ..TrainConfig::new(fixture("tiny-xlmr"), fixture("triplets.jsonl"), out.clone())
        };
        train(&cfg, &Device::Cpu).unwrap();
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap()
    };
    let differs = reference.iter().any(|(name, t)| {
        !zero_gradient(name)
            && values(t)
                .iter()
                .zip(values(&other[name]))
                .any(|(p, q)| (p - q).abs() > 1e-4)
    });
    assert!(
        differs,
        "a doubled learning rate left every weight within tolerance"
    );
}
