//! Quantizing `f32` values into ggml blocks: Q4_K, for making quantized test and
//! benchmark models (a random model of a large shape, [`quantize_q4_k`]) whose
//! bytes then take the same path as a GGUF file's.
//!
//! The encoding is ggml's `block_q4_K` (`ggml-common.h`): per 256 values `d` and
//! `dmin` (f16), twelve bytes of 6-bit sub-block scales and mins, and 128 bytes
//! of 4-bit codes, value = `d·sc·q − dmin·m` per sub-block of 32. The choice of
//! each sub-block's scale and min is the plain one (the sub-block's range over
//! 15 steps, its minimum clamped to at most 0), not `quantize_row_q4_K_ref`'s
//! iterative search: the result is a valid Q4_K block, a little less accurate
//! than llama.cpp's.

use half::f16;

use super::dequant::scale_min_k4;
use super::types::QK_K;
use crate::{Error, Result};

/// Bytes of one Q4_K block of [`QK_K`] values.
pub const Q4_K_BLOCK_BYTES: usize = 144;

/// `x` (a multiple of [`QK_K`] values, finite) as Q4_K blocks.
pub fn quantize_q4_k(x: &[f32]) -> Result<Vec<u8>> {
    if !x.len().is_multiple_of(QK_K) {
        return Err(Error::Other(format!(
            "Q4_K quantizes whole blocks of {QK_K} values, got {}",
            x.len()
        )));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Other(format!(
            "Q4_K quantizes finite values, found {} at index {i}",
            x[i]
        )));
    }
    let mut out = vec![0u8; x.len() / QK_K * Q4_K_BLOCK_BYTES];
    for (xb, yb) in x
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(Q4_K_BLOCK_BYTES))
    {
        block_q4_k(xb, yb);
    }
    Ok(out)
}

fn block_q4_k(x: &[f32], y: &mut [u8]) {
    // Per sub-block: value ≈ scale·q − min, q in 0..=15, min >= 0.
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    for (j, s) in x.chunks_exact(32).enumerate() {
        let lo = s.iter().copied().fold(f32::INFINITY, f32::min).min(0.0);
        let hi = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        scales[j] = (hi - lo) / 15.0;
        mins[j] = -lo;
    }
    let max_scale = scales.iter().copied().fold(0.0, f32::max);
    let max_min = mins.iter().copied().fold(0.0, f32::max);
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let packed = &mut y[4..16];
    for j in 0..8 {
        let ls = ((inv_scale * scales[j]).round() as u8).min(63);
        let lm = ((inv_min * mins[j]).round() as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    y[0..2].copy_from_slice(&d.to_le_bytes());
    y[2..4].copy_from_slice(&dmin.to_le_bytes());
    let (d, dmin) = (d.to_f32(), dmin.to_f32());
    let mut codes = [0u8; QK_K];
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &y[4..16]);
        let step = d * sc as f32;
        if step == 0.0 {
            continue;
        }
        let offset = dmin * m as f32;
        for i in 0..32 {
            let q = ((x[32 * j + i] + offset) / step).round();
            codes[32 * j + i] = q.clamp(0.0, 15.0) as u8;
        }
    }
    let qs = &mut y[16..144];
    for (c, q) in codes.chunks_exact(64).zip(qs.chunks_exact_mut(32)) {
        for l in 0..32 {
            q[l] = c[l] | (c[l + 32] << 4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{dequantize, GgmlType};

    /// Through ggml's dequantization (checked against ggml elsewhere), each
    /// value comes back within its sub-block's step, plus the 6-bit rounding of
    /// the sub-block's scale and min.
    #[test]
    fn q4_k_blocks_dequantize_to_the_values_within_a_step() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32
        };
        // Mixed ranges: some sub-blocks all positive, some wide, one constant.
        let mut x: Vec<f32> = (0..4 * QK_K)
            .map(|i| match (i / 32) % 4 {
                0 => next() * 0.1,
                1 => (next() - 0.5) * 2.0,
                2 => (next() - 0.5) * 0.01,
                _ => -0.3,
            })
            .collect();
        x[5] = 0.0;
        let bytes = quantize_q4_k(&x).unwrap();
        assert_eq!(bytes.len(), 4 * Q4_K_BLOCK_BYTES);
        let mut back = vec![0f32; x.len()];
        dequantize(GgmlType::Q4_K, &bytes, &mut back).unwrap();
        for (b, (xs, ys)) in x.chunks(QK_K).zip(back.chunks(QK_K)).enumerate() {
            let max_scale = xs
                .chunks(32)
                .map(|s| {
                    let lo = s.iter().copied().fold(0f32, f32::min);
                    let hi = s.iter().copied().fold(f32::MIN, f32::max);
                    (hi - lo) / 15.0
                })
                .fold(0f32, f32::max);
            let max_min = xs.iter().copied().fold(0f32, |a, v| a.max(-v));
            // Half a step, plus what the 6-bit scale and min can be off by
            // (half a unit of max/63 each, times up to 15 steps for the scale).
            let bound = 0.5 * max_scale + 15.0 * 0.5 * max_scale / 63.0 + 0.5 * max_min / 63.0;
            for (i, (a, b2)) in xs.iter().zip(ys).enumerate() {
                assert!(
                    (a - b2).abs() <= bound * 1.01 + 1e-6,
                    "block {b} value {i}: {a} came back as {b2} (bound {bound})"
                );
            }
        }
        let err: f32 =
            x.iter().zip(&back).map(|(a, b)| (a - b).abs()).sum::<f32>() / x.len() as f32;
        assert!(err < 0.02, "mean error {err}");
    }

    #[test]
    fn q4_k_refuses_partial_blocks_and_non_finite_values() {
        let e = quantize_q4_k(&[0.0; 100]).unwrap_err().to_string();
        assert!(e.contains("256") && e.contains("100"), "{e}");
        let mut x = vec![0.0; 256];
        x[7] = f32::NAN;
        let e = quantize_q4_k(&x).unwrap_err().to_string();
        assert!(e.contains("index 7"), "{e}");
    }
}
