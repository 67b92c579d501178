//! Where the real tokens of a right-padded batch go in the packed (padding-free) matrix of
//! `packed.rs`; plain host code, so it is tested on every build.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use candle_core::{DType, Tensor};

/// Longest sequence the packed path takes (the attention kernel's shared-memory tile,
/// `ATT_MAX_L` in `kernels/infer.cu`).
pub const MAX_LEN: usize = 128;

/// Where a padded batch's real tokens go in the packed matrix.
pub(super) struct PackedBatch {
    /// Flat indices (`b·L + j`) of the real tokens, sequence by sequence.
    pub(super) rows: Vec<u32>,
    /// Row offsets of the sequences, `B + 1`: sequence `b`'s first token (`<s>`, the
    /// classifier's input) is packed row `offsets[b]`.
    pub(super) offsets: Vec<u32>,
    /// The longest sequence.
    pub(super) max_len: usize,
}

impl PackedBatch {
    /// Reads the `[B, L]` mask (one small device-to-host copy) and lays out the packed rows.
    pub(super) fn of(attention_mask: &Tensor) -> candle_core::Result<Option<PackedBatch>> {
        let mask = attention_mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        Ok(Self::from_mask(&mask))
    }

    pub(super) fn from_mask(mask: &[Vec<f32>]) -> Option<PackedBatch> {
        let mut rows = Vec::new();
        let mut offsets = vec![0u32];
        let mut max_len = 0;
        for (b, row) in mask.iter().enumerate() {
            let len = row.iter().take_while(|&&m| m != 0.0).count();
            let right_padded = row[len..].iter().all(|&m| m == 0.0);
            if len == 0 || len > MAX_LEN || !right_padded {
                return None;
            }
            max_len = max_len.max(len);
            let base = (b * row.len()) as u32;
            rows.extend(base..base + len as u32);
            offsets.push(rows.len() as u32);
        }
        Some(PackedBatch {
            rows,
            offsets,
            max_len,
        })
    }

    /// Sequences in the batch.
    pub(super) fn sequences(&self) -> usize {
        self.offsets.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_right_padded_rows_and_refuses_the_rest() {
        let p = PackedBatch::from_mask(&[vec![1.0, 1.0, 0.0], vec![1.0, 1.0, 1.0]]).unwrap();
        assert_eq!(p.rows, vec![0, 1, 3, 4, 5]);
        assert_eq!(p.offsets, vec![0, 2, 5]);
        assert_eq!(p.sequences(), 2);
        assert_eq!(p.max_len, 3);
        assert!(PackedBatch::from_mask(&[vec![0.0, 1.0, 1.0]]).is_none());
        assert!(PackedBatch::from_mask(&[vec![1.0, 0.0, 1.0]]).is_none());
        assert!(PackedBatch::from_mask(&[vec![1.0; MAX_LEN + 1]]).is_none());
    }
}
