//! Input rows quantized to 8 bits ([`QuantRows`]), for the integer products of
//! [`super::panels`].

/// One input row's parts: codes, block scales, block sums.
pub(super) type RowParts<'a> = (&'a [i8], &'a [f32], &'a [f32]);

/// Activations per scale.
const BLOCK: usize = 32;

/// `m` rows of `k` values as 8-bit codes with one scale per block of 32:
/// `x ≈ scale * code`, `scale = max|x| / 127` (ggml's `quantize_row_q8_0`, with
/// the scale kept in `f32`).
#[derive(Debug, Clone)]
pub struct QuantRows {
    m: usize,
    k: usize,
    qs: Vec<i8>,
    /// `[m, k / 32]`.
    scales: Vec<f32>,
    /// `[m, k / 32]`: `scale * sum(codes)` of each block, for the weights'
    /// offsets.
    sums: Vec<f32>,
}

impl QuantRows {
    /// `x`, `[m, k]` row-major, quantized (`k` a multiple of 32).
    pub fn quantize(x: &[f32], m: usize, k: usize) -> Self {
        assert!(
            k.is_multiple_of(BLOCK),
            "QuantRows: k = {k} is not a multiple of {BLOCK}"
        );
        let blocks = m * k / BLOCK;
        let mut out = QuantRows {
            m,
            k,
            qs: vec![0; m * k],
            scales: Vec::with_capacity(blocks),
            sums: Vec::with_capacity(blocks),
        };
        for (xb, qb) in x.chunks_exact(BLOCK).zip(out.qs.chunks_exact_mut(BLOCK)) {
            let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, v) in qb.iter_mut().zip(xb) {
                *q = (v * id).round() as i8;
                sum += *q as i32;
            }
            out.scales.push(d);
            out.sums.push(d * sum as f32);
        }
        out
    }

    /// Rows (`m`).
    pub fn m(&self) -> usize {
        self.m
    }

    /// Rows `r0..r0 + rb` as (codes, block scales, block sums), `rb` at most 4
    /// (the rest empty).
    pub(super) fn parts(&self, r0: usize, rb: usize) -> [RowParts<'_>; 4] {
        let (k, b) = (self.k, self.k / BLOCK);
        std::array::from_fn(|i| {
            if i < rb {
                let r = r0 + i;
                (
                    &self.qs[r * k..(r + 1) * k],
                    &self.scales[r * b..(r + 1) * b],
                    &self.sums[r * b..(r + 1) * b],
                )
            } else {
                (&[][..], &[][..], &[][..])
            }
        })
    }

    /// Row `r`'s values as the codes represent them (`scale * code`).
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        let k = self.k;
        (0..k)
            .map(|p| self.scales[(r * k + p) / BLOCK] * self.qs[r * k + p] as f32)
            .collect()
    }
}
