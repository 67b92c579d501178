//! Helpers shared by the training tests: the fixtures and the comparison of two trained weight
//! sets.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::Tensor;

/// Learning rate of the test updates.
pub const LR: f64 = 1e-3;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Parameters whose MarginMSE gradient is zero in exact arithmetic: the classifier's output bias
/// adds to both scores of a triplet (∂L/∂b = Σd − Σd), and a key bias shifts every score of a
/// query by the same `q·b`, which softmax removes. Their computed gradients are rounding noise,
/// which AdamW (invariant to the gradient's scale) turns into steps of up to `lr`, so they are
/// checked against that bound, not against each other.
pub fn zero_gradient(name: &str) -> bool {
    name == "classifier.out_proj.bias" || name.ends_with("attention.self.key.bias")
}

pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Asserts that the weights `a` and `b`, both trained for two updates at [`LR`] from `before`,
/// agree within `tolerance` of each tensor's largest weight (relative to it: a weight that
/// starts at 0, a bias, holds only its two AdamW steps, whose rounding is the gradient's), and
/// that the [`zero_gradient`] ones moved at most two steps. Returns how many weights moved.
pub fn assert_same_weights(
    a: &HashMap<String, Tensor>,
    b: &HashMap<String, Tensor>,
    before: &HashMap<String, Tensor>,
    tolerance: f32,
) -> usize {
    let mut moved = 0;
    for (name, ta) in a {
        let (x, y, w0) = (values(ta), values(&b[name]), values(&before[name]));
        if zero_gradient(name) {
            for (&v, &v0) in x.iter().chain(&y).zip(w0.iter().cycle()) {
                let step = (v - v0).abs() as f64;
                assert!(step <= 2.0 * LR * 1.001, "{name}: {v0} → {v}");
            }
            continue;
        }
        let scale = x.iter().chain(&y).fold(0f32, |m, v| m.max(v.abs()));
        for (i, ((&p, &q), &p0)) in x.iter().zip(&y).zip(&w0).enumerate() {
            assert!(
                (p - q).abs() <= tolerance * scale,
                "{name}[{i}]: {p} vs {q} (largest |w| {scale})"
            );
            moved += usize::from(p != p0);
        }
    }
    moved
}
