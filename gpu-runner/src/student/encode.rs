//! Pair encoding exactly as `CrossEncoder` does it (spec §B.2): `<s> q </s></s> p </s>` through
//! the model's own `tokenizer.json`, `longest_first` truncation to `max_length`, right padding
//! with `<pad>`, and integer position ids.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::xlm_roberta::position_ids;
use crate::{Error, Result};

/// One padded batch of encoded pairs, ready for the model.
pub struct EncodedBatch {
    /// Token ids, `[B, L]` u32.
    pub input_ids: Tensor,
    /// Position ids, `[B, L]` u32.
    pub position_ids: Tensor,
    /// 1 for real tokens, 0 for padding, `[B, L]` f32.
    pub attention_mask: Tensor,
    /// Real (unpadded) length of every row.
    pub lengths: Vec<usize>,
}

/// Tokenizes (query, passage) pairs for a cross-encoder.
pub struct PairEncoder {
    tokenizer: Tokenizer,
    pad_token_id: u32,
}

impl PairEncoder {
    /// Loads `tokenizer.json` and sets `longest_first` truncation to `max_length` (which counts
    /// the four special tokens) and no padding.
    pub fn from_file(path: &Path, max_length: usize, pad_token_id: u32) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Model {
                path: path.to_path_buf(),
                message: "tokenizer file not found".into(),
            });
        }
        let model_err = |message: String| Error::Model {
            path: path.to_path_buf(),
            message,
        };
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| model_err(format!("cannot load tokenizer: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| model_err(format!("max length {max_length}: {e}")))?;
        Ok(PairEncoder {
            tokenizer,
            pad_token_id,
        })
    }

    /// Token ids of every pair, with special tokens, truncated but not padded.
    pub fn token_ids(&self, pairs: &[(&str, &str)]) -> Result<Vec<Vec<u32>>> {
        let inputs: Vec<(String, String)> = pairs
            .iter()
            .map(|(q, p)| (q.to_string(), p.to_string()))
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| Error::Other(format!("tokenizing pairs: {e}")))?;
        Ok(encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// Encodes `pairs` into one batch padded to its longest row.
    pub fn encode(&self, pairs: &[(&str, &str)], device: &Device) -> Result<EncodedBatch> {
        let ids = self.token_ids(pairs)?;
        pad_batch(&ids, self.pad_token_id, device)
    }
}

/// Right-pads token id rows to the longest one and builds the mask and position ids.
pub fn pad_batch(rows: &[Vec<u32>], pad_token_id: u32, device: &Device) -> Result<EncodedBatch> {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let n = rows.len();
    let mut ids = Vec::with_capacity(n * width);
    let mut mask = Vec::with_capacity(n * width);
    let mut positions = Vec::with_capacity(n * width);
    for row in rows {
        let mut padded = row.clone();
        padded.resize(width, pad_token_id);
        mask.extend((0..width).map(|j| if j < row.len() { 1f32 } else { 0f32 }));
        positions.extend(position_ids(&padded, pad_token_id));
        ids.extend(padded);
    }
    Ok(EncodedBatch {
        input_ids: Tensor::from_vec(ids, (n, width), device)?,
        position_ids: Tensor::from_vec(positions, (n, width), device)?,
        attention_mask: Tensor::from_vec(mask, (n, width), device)?,
        lengths: rows.iter().map(Vec::len).collect(),
    })
}

/// Indices of `lengths` in batches of at most `batch_size`, longest first, so that each batch
/// pads little. Scores are put back in input order by the caller.
pub fn length_sorted_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_right_with_mask_and_positions() {
        let rows = vec![vec![0, 7, 2, 2, 8, 2], vec![0, 9, 2, 2, 2]];
        let b = pad_batch(&rows, 1, &Device::Cpu).unwrap();
        assert_eq!(
            b.input_ids.to_vec2::<u32>().unwrap(),
            vec![vec![0, 7, 2, 2, 8, 2], vec![0, 9, 2, 2, 2, 1]]
        );
        assert_eq!(
            b.position_ids.to_vec2::<u32>().unwrap()[1],
            vec![2, 3, 4, 5, 6, 1]
        );
        assert_eq!(
            b.attention_mask.to_vec2::<f32>().unwrap()[1],
            vec![1., 1., 1., 1., 1., 0.]
        );
        assert_eq!(b.lengths, vec![6, 5]);
    }

    #[test]
    fn batches_are_sorted_by_length() {
        let batches = length_sorted_batches(&[3, 9, 1, 7, 5], 2);
        assert_eq!(batches, vec![vec![1, 3], vec![4, 0], vec![2]]);
    }
}
