//! The fused student ops as candle custom ops (forward + backward) and their public entry points:
//! [`norm`] (LayerNorm, column sums), [`attention`] (probabilities, head split and merge) and
//! [`pointwise`] (bias + GELU, dropout, bias + dropout + residual).

mod attention;
mod norm;
mod pointwise;

pub use attention::{attention_probs, head_merge, head_split_bias};
pub use norm::{column_sum, layer_norm};
pub use pointwise::{bias_dropout_residual, bias_gelu, dropout};

/// Dropout probability and the scale of kept elements.
fn keep(p: f32) -> (f32, f32) {
    if p > 0.0 {
        (p, 1.0 / (1.0 - p))
    } else {
        (0.0, 1.0)
    }
}
