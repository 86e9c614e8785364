//! Padded batches: token ids, positions and the attention mask for sequences of
//! different lengths.

use burn::prelude::*;

/// Sequences of different lengths laid out as one right-padded batch.
#[derive(Debug, Clone)]
pub struct PaddedBatch {
    /// `[batch * max_len]` token ids, padding filled with 0.
    pub tokens: Vec<i64>,
    pub lengths: Vec<usize>,
    pub max_len: usize,
}

impl PaddedBatch {
    /// Right-pads `seqs` to the longest one.
    pub fn right_padded(seqs: &[Vec<u32>]) -> Self {
        let max_len = seqs.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut tokens = vec![0i64; seqs.len() * max_len];
        for (i, s) in seqs.iter().enumerate() {
            for (j, t) in s.iter().enumerate() {
                tokens[i * max_len + j] = *t as i64;
            }
        }
        PaddedBatch {
            tokens,
            lengths: seqs.iter().map(Vec::len).collect(),
            max_len,
        }
    }

    pub fn batch_size(&self) -> usize {
        self.lengths.len()
    }

    /// Token ids `[b, s]`, positions `[b, s]` and the mask `[b, 1, s, s]` (true where
    /// query q must not see key k: k > q, or k is padding).
    pub fn tensors<B: Backend>(
        &self,
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>, Tensor<B, 4, Bool>) {
        let (b, s) = (self.batch_size(), self.max_len);
        let tokens = Tensor::from_data(TensorData::new(self.tokens.clone(), [b, s]), device);
        let positions: Vec<i64> = (0..b).flat_map(|_| 0..s as i64).collect();
        let positions = Tensor::from_data(TensorData::new(positions, [b, s]), device);
        let mut mask = Vec::with_capacity(b * s * s);
        for len in &self.lengths {
            for q in 0..s {
                for k in 0..s {
                    mask.push(k > q || k >= *len);
                }
            }
        }
        let mask = Tensor::from_data(TensorData::new(mask, [b, 1, s, s]), device);
        (tokens, positions, mask)
    }
}
