//! Query-level KV reuse: the prompt tokens a query's pairs share are run once per query.
//!
//! Every pair's prompt after the shared prefix is `query tokens + document tokens + suffix`. The
//! pairs of one query share a leading run of tokens (the query and `\n<Document>:`); here that
//! run becomes the query's *segment*, run once by [`Qwen3Scorer::segments`], and each pair runs
//! only the rest ([`Qwen3Scorer::score_in_segments`]). Documents are length-bucketed across the
//! queries of a chunk, so batches pad little.

use std::collections::HashMap;

use super::qwen3::{PrefixKv, Qwen3Scorer};
use super::{plan_batches, Batching};
use crate::Result;

/// Queries whose segments are held at once (8B shapes: about 6 MB of keys and values each).
pub const SEGMENT_CHUNK: usize = 256;

/// Pairs split into per-query segments and per-pair remainders.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySplit {
    /// One segment per distinct query, in order of first appearance.
    pub segments: Vec<Vec<u32>>,
    /// Per pair: the index of its query's segment.
    pub owner: Vec<usize>,
    /// Per pair: its tokens after the segment (never empty).
    pub rests: Vec<Vec<u32>>,
}

/// Splits `seqs` (prompt ids after the shared prefix) by `query` (one key per pair): the segment
/// of a query is the longest token prefix all its pairs share, shortened so every pair keeps at
/// least one token of its own (the scored last position).
pub fn split_by_query<K: std::hash::Hash + Eq>(seqs: &[Vec<u32>], query: &[K]) -> QuerySplit {
    let mut members: HashMap<&K, Vec<usize>> = HashMap::new();
    for (i, k) in query.iter().enumerate() {
        members.entry(k).or_default().push(i);
    }
    let mut seg_len = vec![0usize; seqs.len()];
    for m in members.values() {
        let first = &seqs[m[0]];
        let common = m
            .iter()
            .map(|&i| common_prefix(first, &seqs[i]))
            .min()
            .unwrap_or(0);
        let shortest = m.iter().map(|&i| seqs[i].len()).min().unwrap_or(0);
        for &i in m {
            seg_len[i] = common.min(shortest.saturating_sub(1));
        }
    }
    split_at(seqs, query, &seg_len)
}

/// The number of leading tokens `a` and `b` share.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Splits `seqs` at the given per-pair segment lengths: the pairs of one query whose segments
/// have the same length share one segment (segments in order of first appearance). A length
/// is cut so that every pair keeps at least one token of its own.
pub fn split_at<K: std::hash::Hash + Eq>(
    seqs: &[Vec<u32>],
    query: &[K],
    seg_len: &[usize],
) -> QuerySplit {
    let mut slot_of: HashMap<(&K, usize), usize> = HashMap::new();
    let mut segments: Vec<Vec<u32>> = Vec::new();
    let mut owner = Vec::with_capacity(seqs.len());
    let mut rests = Vec::with_capacity(seqs.len());
    for ((seq, k), &n) in seqs.iter().zip(query).zip(seg_len) {
        let n = n.min(seq.len().saturating_sub(1));
        let slot = *slot_of.entry((k, n)).or_insert_with(|| {
            segments.push(seq[..n].to_vec());
            segments.len() - 1
        });
        owner.push(slot);
        rests.push(seq[n..].to_vec());
    }
    QuerySplit {
        segments,
        owner,
        rests,
    }
}

/// Scores the pairs of `split` after `prefix`, `batch` pairs at a time; scores in pair order.
/// Queries whose segment is empty (nothing shared) are scored without a segment.
pub fn score_split(
    model: &Qwen3Scorer,
    prefix: Option<&PrefixKv>,
    split: &QuerySplit,
    batching: Batching,
) -> Result<Vec<f32>> {
    let mut scores = vec![0.0f32; split.rests.len()];
    let with_segment: Vec<usize> = (0..split.segments.len())
        .filter(|&q| !split.segments[q].is_empty())
        .collect();
    let lone: Vec<usize> = (0..split.rests.len())
        .filter(|&i| split.segments[split.owner[i]].is_empty())
        .collect();
    score_plain(model, prefix, split, &lone, batching, &mut scores)?;
    for chunk in with_segment.chunks(SEGMENT_CHUNK) {
        let segs: Vec<&[u32]> = chunk
            .iter()
            .map(|&q| split.segments[q].as_slice())
            .collect();
        let kv = model.segments(prefix, &segs)?;
        let slot: HashMap<usize, usize> = chunk.iter().enumerate().map(|(s, &q)| (q, s)).collect();
        let pairs: Vec<usize> = (0..split.rests.len())
            .filter(|&i| slot.contains_key(&split.owner[i]))
            .collect();
        let lengths: Vec<usize> = pairs.iter().map(|&i| split.rests[i].len()).collect();
        for b in plan_batches(&lengths, batching) {
            let seqs: Vec<&[u32]> = b
                .iter()
                .map(|&j| split.rests[pairs[j]].as_slice())
                .collect();
            let owner: Vec<usize> = b.iter().map(|&j| slot[&split.owner[pairs[j]]]).collect();
            for (&j, s) in b
                .iter()
                .zip(model.score_in_segments(prefix, &kv, &owner, &seqs)?)
            {
                scores[pairs[j]] = s;
            }
        }
    }
    Ok(scores)
}

/// Scores the pairs `idx` without a segment (only the shared prefix is reused).
fn score_plain(
    model: &Qwen3Scorer,
    prefix: Option<&PrefixKv>,
    split: &QuerySplit,
    idx: &[usize],
    batching: Batching,
    scores: &mut [f32],
) -> Result<()> {
    let lengths: Vec<usize> = idx.iter().map(|&i| split.rests[i].len()).collect();
    for b in plan_batches(&lengths, batching) {
        let seqs: Vec<&[u32]> = b.iter().map(|&j| split.rests[idx[j]].as_slice()).collect();
        for (&j, s) in b.iter().zip(model.score_batch(prefix, &seqs)?) {
            scores[idx[j]] = s;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_the_shared_run_and_every_rest_keeps_a_token() {
        let seqs = vec![
            vec![1, 2, 3, 9, 9],
            vec![1, 2, 3, 8],
            vec![5, 6],
            vec![1, 2, 4],
            vec![7],
        ];
        let split = split_by_query(&seqs, &["a", "a", "b", "a", "c"]);
        assert_eq!(split.segments, vec![vec![1, 2], vec![5], vec![]]);
        assert_eq!(split.owner, vec![0, 0, 1, 0, 2]);
        assert_eq!(
            split.rests,
            vec![vec![3, 9, 9], vec![3, 8], vec![6], vec![4], vec![7]]
        );
    }

    #[test]
    fn split_at_groups_by_query_and_length_and_keeps_a_token() {
        let seqs = vec![vec![1, 2, 3, 9], vec![1, 2, 3, 8], vec![1, 2, 7], vec![4]];
        let split = split_at(&seqs, &["a", "a", "a", "b"], &[3, 3, 2, 5]);
        assert_eq!(split.segments, vec![vec![1, 2, 3], vec![1, 2], vec![]]);
        assert_eq!(split.owner, vec![0, 0, 1, 2]);
        assert_eq!(split.rests, vec![vec![9], vec![8], vec![7], vec![4]]);
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
    }
}
