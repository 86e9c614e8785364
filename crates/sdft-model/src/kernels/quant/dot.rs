//! Input rows quantized to 8 bits ([`QuantRows`]) and their integer dot
//! products with a [`QuantMatrix`]'s rows, per instruction set.

use super::QuantMatrix;
use crate::kernels::{Isa, SendPtr};

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

    /// Row `r`'s values as the codes represent them (`scale * code`).
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        let k = self.k;
        (0..k)
            .map(|p| self.scales[(r * k + p) / BLOCK] * self.qs[r * k + p] as f32)
            .collect()
    }
}

/// Weight rows per task of a parallel product.
const ROWS_PER_TASK: usize = 16;

/// `out[m, n]` = the rows of `x` against every row of `w`, spread over the
/// kernels' thread team in contiguous ranges of weight rows.
pub(super) fn product(isa: Isa, w: &QuantMatrix, x: &QuantRows, out: &mut [f32]) {
    let (n, m) = (w.n, x.m);
    let tasks = n.div_ceil(ROWS_PER_TASK);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let run = |t: usize, _next: Option<usize>| {
        for j in t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(n) {
            for r in 0..m {
                let v = dot(isa, w, j, x, r);
                // SAFETY: task t alone writes the columns of its rows j, and
                // `out` (`m * n` values) outlives the section.
                unsafe { *out_ptr.at(r * n + j) = v };
            }
        }
    };
    if 2 * m * n * w.k < 1 << 18 {
        (0..tasks).for_each(|t| run(t, None));
    } else {
        crate::kernels::team::Team::global().run_split(tasks, &run);
    }
}

/// Row `j` of `w` against row `r` of `x`.
#[inline]
fn dot(isa: Isa, w: &QuantMatrix, j: usize, x: &QuantRows, r: usize) -> f32 {
    let k = w.k;
    let blocks = k / BLOCK;
    let wq = &w.qs[j * k..(j + 1) * k];
    let ws = &w.scales[j * k / w.group..(j + 1) * k / w.group];
    let xq = &x.qs[r * k..(r + 1) * k];
    let xd = &x.scales[r * blocks..(r + 1) * blocks];
    let codes = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx2 => {
            // SAFETY: AVX2 and FMA were detected (AVX-512 implies both); the
            // slices hold `blocks` blocks of codes and their scales.
            unsafe {
                if w.group == 16 {
                    x86::dot::<true>(wq, ws, xq, xd, blocks)
                } else {
                    x86::dot::<false>(wq, ws, xq, xd, blocks)
                }
            }
        }
        _ => dot_portable(w.group, wq, ws, xq, xd, blocks),
    };
    if w.mins.is_empty() {
        codes
    } else {
        let mins = &w.mins[j * blocks..(j + 1) * blocks];
        let sums = &x.sums[r * blocks..(r + 1) * blocks];
        codes + mins.iter().zip(sums).map(|(a, b)| a * b).sum::<f32>()
    }
}

/// The integer products of each half-block (16 codes), scaled.
fn dot_portable(group: usize, wq: &[i8], ws: &[f32], xq: &[i8], xd: &[f32], blocks: usize) -> f32 {
    let mut acc = 0f32;
    for b in 0..blocks {
        for h in 0..2 {
            let at = b * BLOCK + h * 16;
            let s: i32 = (at..at + 16).map(|p| wq[p] as i32 * xq[p] as i32).sum();
            let scale = if group == 16 { ws[2 * b + h] } else { ws[b] };
            acc += s as f32 * (scale * xd[b]);
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The scales of block `b` for its eight 32-bit lanes (lanes 0..4 hold the
    /// first 16 codes' sums, 4..8 the last 16's).
    #[inline(always)]
    unsafe fn scales<const G16: bool>(ws: &[f32], dx: f32, b: usize) -> __m256 {
        if G16 {
            _mm256_setr_m128(
                _mm_set1_ps(*ws.get_unchecked(2 * b) * dx),
                _mm_set1_ps(*ws.get_unchecked(2 * b + 1) * dx),
            )
        } else {
            _mm256_set1_ps(*ws.get_unchecked(b) * dx)
        }
    }

    /// The eight partial sums of block `b`'s 32 code products.
    #[inline(always)]
    unsafe fn block(wq: &[i8], xq: &[i8], b: usize) -> __m256i {
        let w = _mm256_loadu_si256(wq.as_ptr().add(32 * b).cast());
        let x = _mm256_loadu_si256(xq.as_ptr().add(32 * b).cast());
        // |w| as unsigned bytes (-128 becomes 128) times x with w's sign: the
        // same products, in the unsigned-by-signed form `maddubs` takes. Sums
        // of two products stay within i16: 2 * 128 * 127 < 32768.
        let aw = _mm256_sign_epi8(w, w);
        let sx = _mm256_sign_epi8(x, w);
        _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1))
    }

    /// `sum_b scale_w(b) * scale_x(b) * (w_b · x_b)` over `blocks` blocks of 32.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `wq` and `xq` hold `32 * blocks` codes,
    /// `ws` `blocks` scales (`2 * blocks` with `G16`), `xd` `blocks`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot<const G16: bool>(
        wq: &[i8],
        ws: &[f32],
        xq: &[i8],
        xd: &[f32],
        blocks: usize,
    ) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut b = 0;
        while b + 2 <= blocks {
            for (i, a) in acc.iter_mut().enumerate() {
                let p = _mm256_cvtepi32_ps(block(wq, xq, b + i));
                *a = _mm256_fmadd_ps(p, scales::<G16>(ws, *xd.get_unchecked(b + i), b + i), *a);
            }
            b += 2;
        }
        if b < blocks {
            let p = _mm256_cvtepi32_ps(block(wq, xq, b));
            acc[0] = _mm256_fmadd_ps(p, scales::<G16>(ws, *xd.get_unchecked(b), b), acc[0]);
        }
        let s = _mm256_add_ps(acc[0], acc[1]);
        let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_add_ss(h, _mm_shuffle_ps::<1>(h, h));
        _mm_cvtss_f32(h)
    }
}

/// [`product`] with the instruction set given, for tests.
#[cfg(test)]
pub(super) fn product_with(isa: Isa, w: &QuantMatrix, x: &[f32], m: usize) -> Vec<f32> {
    let rows = QuantRows::quantize(x, m, w.k);
    let mut out = vec![0f32; m * w.n];
    product(isa, w, &rows, &mut out);
    out
}
