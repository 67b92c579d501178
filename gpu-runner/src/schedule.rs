//! Training-schedule arithmetic of the reference trainer (spec §C.3, §C.7): how many optimizer
//! steps N triplets give, how many of them warm up, and the learning rate of every update.
//!
//! Everything here is a pure function of its inputs, computed in `f64` exactly as Python does,
//! so the values match the Hugging Face Trainer bit for bit.

/// Number of micro-batches one epoch yields for `n_examples` with `batch_size`.
///
/// With `drop_last` (what `torchrun` forces, §C.3) a trailing partial batch is dropped.
pub fn micro_batches_per_epoch(n_examples: usize, batch_size: usize, drop_last: bool) -> usize {
    let batch_size = batch_size.max(1);
    if drop_last {
        n_examples / batch_size
    } else {
        n_examples.div_ceil(batch_size)
    }
}

/// Number of optimizer updates in one epoch of `n_micro_batches` with `grad_accum` micro-batches
/// per update: `L//GA + (L%GA > 0)`, at least 1 (`Trainer.set_initial_training_values`).
pub fn updates_per_epoch(n_micro_batches: usize, grad_accum: usize) -> usize {
    n_micro_batches.div_ceil(grad_accum.max(1)).max(1)
}

/// Total optimizer steps `S` for `n_examples` triplets over `epochs` epochs.
pub fn optimizer_steps(
    n_examples: usize,
    batch_size: usize,
    grad_accum: usize,
    drop_last: bool,
    epochs: usize,
) -> usize {
    let n_micro = micro_batches_per_epoch(n_examples, batch_size, drop_last);
    updates_per_epoch(n_micro, grad_accum) * epochs.max(1)
}

/// Warmup steps `W = ceil(S · ratio)` (`TrainingArguments.get_warmup_steps`).
pub fn warmup_steps(total_steps: usize, warmup_ratio: f64) -> usize {
    (total_steps as f64 * warmup_ratio).ceil() as usize
}

/// The Hugging Face `linear` schedule with warmup, as stepped by `LambdaLR` after each update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSchedule {
    /// Peak learning rate (`--lr`).
    pub base_lr: f64,
    /// Total optimizer steps `S`.
    pub total_steps: usize,
    /// Warmup steps `W`.
    pub warmup_steps: usize,
}

impl LinearSchedule {
    /// A schedule over `total_steps` whose warmup is `ceil(total_steps · warmup_ratio)`.
    pub fn new(base_lr: f64, total_steps: usize, warmup_ratio: f64) -> Self {
        LinearSchedule {
            base_lr,
            total_steps,
            warmup_steps: warmup_steps(total_steps, warmup_ratio),
        }
    }

    /// The multiplier `λ(s)` after `s` scheduler steps
    /// (`_get_linear_schedule_with_warmup_lr_lambda`).
    pub fn lambda(&self, s: usize) -> f64 {
        if s < self.warmup_steps {
            return s as f64 / self.warmup_steps.max(1) as f64;
        }
        let remaining = self.total_steps as f64 - s as f64;
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        (remaining / span).max(0.0)
    }

    /// The learning rate of update `k` (1-based): `base_lr · λ(k − 1)`.
    /// The first update therefore runs at lr 0 whenever there is a warmup.
    pub fn lr(&self, k: usize) -> f64 {
        self.base_lr * self.lambda(k.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_c7_table() {
        let s = LinearSchedule::new(2e-5, 1217, 0.05);
        assert_eq!(s.warmup_steps, 61);
        let table = [
            (1, 0.0),
            (2, 3.278688524590164e-07),
            (61, 1.9672131147540985e-05),
            (62, 2e-05),
            (63, 1.998269896193772e-05),
            (600, 1.069204152249135e-05),
            (1216, 3.4602076124567476e-08),
            (1217, 1.7301038062283738e-08),
        ];
        for (k, want) in table {
            assert_eq!(s.lr(k), want, "update {k}");
        }
    }

    #[test]
    fn spec_c3_step_counts() {
        // N ∈ [622 608, 623 119] gives S = 1217 under torchrun (drop_last).
        for n in [622_608, 622_900, 623_119] {
            assert_eq!(optimizer_steps(n, 16, 32, true, 1), 1217, "N={n}");
        }
        assert_eq!(optimizer_steps(622_607, 16, 32, true, 1), 1216);
        assert_eq!(optimizer_steps(623_120, 16, 32, true, 1), 1218);
        // Without drop_last the spec's formula L = ceil(N/16) gives N ∈ [622 593, 623 104]
        // (the spec's prose says 622 577, which its own formula maps to S = 1216).
        assert_eq!(optimizer_steps(622_593, 16, 32, false, 1), 1217);
        assert_eq!(optimizer_steps(623_104, 16, 32, false, 1), 1217);
        assert_eq!(optimizer_steps(622_592, 16, 32, false, 1), 1216);
        assert_eq!(optimizer_steps(623_105, 16, 32, false, 1), 1218);
        // Fewer triplets than a batch still give one step.
        assert_eq!(optimizer_steps(3, 16, 32, true, 1), 1);
        assert_eq!(optimizer_steps(100, 16, 2, false, 3), 12);
    }

    #[test]
    fn warmup_is_ceil_and_zero_ratio_has_no_warmup() {
        assert_eq!(warmup_steps(1217, 0.05), 61);
        assert_eq!(warmup_steps(2, 0.05), 1);
        assert_eq!(warmup_steps(100, 0.0), 0);
        let s = LinearSchedule::new(1.0, 4, 0.0);
        let lrs: Vec<f64> = (1..=4).map(|k| s.lr(k)).collect();
        assert_eq!(lrs, vec![1.0, 0.75, 0.5, 0.25]);
    }

    #[test]
    fn brute_force_agrees_with_piecewise_formula() {
        for total in 1..60 {
            for ratio in [0.0, 0.05, 0.1, 0.33, 1.0] {
                let s = LinearSchedule::new(3e-4, total, ratio);
                let w = s.warmup_steps;
                for k in 1..=total + 2 {
                    let step = k - 1;
                    let want = if step < w {
                        3e-4 * (step as f64 / w as f64)
                    } else {
                        3e-4 * ((total as f64 - step as f64) / (total - w).max(1) as f64).max(0.0)
                    };
                    assert_eq!(s.lr(k), want, "S={total} ratio={ratio} k={k}");
                    assert!(s.lr(k) >= 0.0 && s.lr(k) <= 3e-4);
                }
            }
        }
    }
}
