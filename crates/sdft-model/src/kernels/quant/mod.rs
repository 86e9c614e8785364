//! Weights kept quantized, and their products on 8-bit activations.
//!
//! A [`QuantMatrix`] holds a GGUF matrix of a quantized type (see
//! [`repack::QUANT_TYPES`]) as integer codes with one `f32` scale per group of
//! 32 weights (16 for Q6_K) and, for the types with a minimum, one `f32` offset
//! per 32: every weight is `scale * code + offset`, exactly the value ggml
//! dequantizes (see [`repack`]).
//!
//! The product runs on [`QuantPanels`], the same codes interleaved eight weight
//! rows at a time, as signed bytes (Q8_0, Q6_K) or, for codes of at most five
//! bits (Q4_0, Q4_1, Q4_K, Q5_0, Q5_K), as unsigned nibbles with a plane of
//! fifth bits: 0.75 to 0.875 bytes per weight with the scales, against 4 for
//! `f32`. It quantizes each input row to 8 bits per block of 32 ([`QuantRows`]:
//! `scale = max|x| / 127`, rounded to nearest, as ggml's `quantize_row_q8_0`)
//! and takes integer products, eight weight rows and up to four input rows at a
//! time (see [`panels`]); the offsets add `offset * sum(x)` per block.

mod panels;
mod repack;
mod rows;

pub use panels::QuantPanels;
pub use repack::QUANT_TYPES;
pub use rows::QuantRows;

use crate::gguf::GgmlType;
use crate::{Error, Result};

/// A `[n, k]` weight kept as 8-bit codes with group scales (see the module docs).
#[derive(Clone)]
pub struct QuantMatrix {
    n: usize,
    k: usize,
    /// Weights per scale: 32, or 16.
    group: usize,
    /// `[n, k]`.
    qs: Vec<i8>,
    /// `[n, k / group]`.
    scales: Vec<f32>,
    /// `[n, k / 32]`, or empty when every offset is zero.
    mins: Vec<f32>,
    /// The ggml types it was made from, such as `"Q5_0"` (for reports).
    source: String,
}

impl std::fmt::Debug for QuantMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantMatrix")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("group", &self.group)
            .field("offsets", &!self.mins.is_empty())
            .field("source", &self.source)
            .finish()
    }
}

impl QuantMatrix {
    /// True when `dtype` can be kept quantized.
    pub fn supports(dtype: GgmlType) -> bool {
        repack::layout(dtype).is_some()
    }

    /// The `[n, k]` matrix stored in `data` as `dtype` (ggml's layout: `n` rows
    /// of `k` elements, each row whole blocks). `what` names the tensor in
    /// errors.
    pub fn from_ggml(dtype: GgmlType, data: &[u8], n: usize, k: usize, what: &str) -> Result<Self> {
        let Some((group, offsets)) = repack::layout(dtype) else {
            return Err(Error::Other(format!(
                "{what}: type {dtype} cannot be kept quantized (supported: {})",
                repack::QUANT_TYPES
            )));
        };
        let (bs, ts) = dtype.block_geometry();
        if !k.is_multiple_of(bs) {
            return Err(Error::Other(format!(
                "{what}: rows of {k} elements are not whole {dtype} blocks of {bs}"
            )));
        }
        if data.len() != n * k / bs * ts {
            return Err(Error::Other(format!(
                "{what}: expected {n} rows of {k} {dtype} elements ({} bytes, {ts} per {bs}), found {} bytes",
                n * k / bs * ts,
                data.len()
            )));
        }
        let mut codes = repack::Codes::default();
        repack::append(dtype, data, &mut codes);
        let mut m = QuantMatrix {
            n,
            k,
            group,
            qs: codes.qs,
            scales: codes.scales,
            mins: codes.mins,
            source: dtype.to_string(),
        };
        if !offsets {
            m.mins.clear();
        }
        Ok(m)
    }

    /// Output rows (`n`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input columns (`k`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.qs.len() + 4 * (self.scales.len() + self.mins.len())
    }

    /// The ggml types it was made from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Row `j`'s values in `f32` (ggml's dequantized values, bit for bit).
    pub fn dequantize_row(&self, j: usize, out: &mut [f32]) {
        self.dequantize_range(j, 0, &mut out[..self.k]);
    }

    /// Row `j`'s values `p0..p0 + out.len()` (`p0` and the length multiples
    /// of 32).
    fn dequantize_range(&self, j: usize, p0: usize, out: &mut [f32]) {
        let (k, g) = (self.k, self.group);
        let at = j * k + p0;
        let q = &self.qs[at..at + out.len()];
        let s = &self.scales[at / g..(at + out.len()) / g];
        for ((o, q), s) in out.chunks_exact_mut(g).zip(q.chunks_exact(g)).zip(s) {
            for (o, q) in o.iter_mut().zip(q) {
                *o = s * *q as f32;
            }
        }
        if !self.mins.is_empty() {
            let m = &self.mins[at / 32..(at + out.len()) / 32];
            for (o, m) in out.chunks_exact_mut(32).zip(m) {
                for o in o.iter_mut() {
                    *o += m;
                }
            }
        }
    }

    /// The whole matrix in `f32`, `[n, k]` row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.n * self.k];
        for (j, row) in out.chunks_exact_mut(self.k.max(1)).enumerate() {
            self.dequantize_row(j, row);
        }
        out
    }

    /// The rows of `parts` (all `[n_i, k]`) stacked into one `[sum n_i, k]`
    /// matrix: one product then computes all of them. Parts of different
    /// layouts meet at the finer one (a 32-group's scale repeated for both
    /// halves; zero offsets), which changes no value.
    pub fn stack(parts: &[&QuantMatrix]) -> Result<Self> {
        let Some(first) = parts.first() else {
            return Err(Error::Other("stack: no matrices".into()));
        };
        let k = first.k;
        if let Some(p) = parts.iter().find(|p| p.k != k) {
            return Err(Error::Other(format!(
                "stack: matrices of {} and {k} columns",
                p.k
            )));
        }
        let group = parts.iter().map(|p| p.group).min().unwrap_or(32);
        let offsets = parts.iter().any(|p| !p.mins.is_empty());
        let mut out = QuantMatrix {
            n: parts.iter().map(|p| p.n).sum(),
            k,
            group,
            qs: Vec::new(),
            scales: Vec::new(),
            mins: Vec::new(),
            source: String::new(),
        };
        let mut sources: Vec<&str> = Vec::new();
        for p in parts {
            out.qs.extend_from_slice(&p.qs);
            let repeat = p.group / group;
            out.scales.extend(
                p.scales
                    .iter()
                    .flat_map(|&s| std::iter::repeat_n(s, repeat)),
            );
            if offsets {
                if p.mins.is_empty() {
                    out.mins.extend(std::iter::repeat_n(0.0, p.n * k / 32));
                } else {
                    out.mins.extend_from_slice(&p.mins);
                }
            }
            if !sources.contains(&p.source.as_str()) {
                sources.push(&p.source);
            }
        }
        out.source = sources.join("+");
        Ok(out)
    }

    /// The rows reordered: row `i` of the result is row `order[i]` of `self`.
    pub fn reorder_rows(&self, order: &[usize]) -> Self {
        let (k, g) = (self.k, self.k / self.group);
        let mut out = QuantMatrix {
            n: order.len(),
            qs: Vec::with_capacity(self.qs.len()),
            scales: Vec::with_capacity(self.scales.len()),
            mins: Vec::with_capacity(self.mins.len()),
            source: self.source.clone(),
            ..*self
        };
        for &j in order {
            out.qs.extend_from_slice(&self.qs[j * k..(j + 1) * k]);
            out.scales
                .extend_from_slice(&self.scales[j * g..(j + 1) * g]);
            if !self.mins.is_empty() {
                out.mins
                    .extend_from_slice(&self.mins[j * k / 32..(j + 1) * k / 32]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
