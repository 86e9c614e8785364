//! ggml's quantized blocks rewritten, exactly, as 8-bit codes with one `f32`
//! scale per group and (for the types with a minimum) one `f32` offset per 32
//! weights: what [`super::QuantMatrix`] holds.
//!
//! Every supported type is `value = scale * code + offset` with a small integer
//! code, so the rewrite loses nothing: the scale is ggml's super-block scale
//! times the sub-block's integer scale (an f16 times a 6- or 8-bit integer, exact
//! in `f32`), and the code is the stored bits minus ggml's zero point where the
//! type has one (Q4_0's 8, Q5_0's 16, Q6_K's 32). The value the kernels
//! reconstruct, `scale * code + offset`, is the one ggml's `dequantize_row_*`
//! computes, bit for bit (tested against [`crate::gguf::dequantize`]).

use half::f16;

use crate::gguf::scale_min_k4;
use crate::gguf::GgmlType;

/// The types that can be rewritten (the quantized ones [`crate::gguf::dequantize`]
/// reads).
pub const QUANT_TYPES: &str = "Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K";

/// Codes, scales and offsets of whole rows, appended block by block.
#[derive(Debug, Default)]
pub(super) struct Codes {
    pub(super) qs: Vec<i8>,
    pub(super) scales: Vec<f32>,
    pub(super) mins: Vec<f32>,
}

/// The layout a type rewrites to: weights per scale (32, or 16 for Q6_K) and
/// whether it has offsets. `None` for types that are not quantized or not
/// supported.
pub(super) fn layout(dtype: GgmlType) -> Option<(usize, bool)> {
    match dtype {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => Some((32, false)),
        GgmlType::Q4_1 | GgmlType::Q4_K | GgmlType::Q5_K => Some((32, true)),
        GgmlType::Q6_K => Some((16, false)),
        _ => None,
    }
}

#[inline(always)]
fn half_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Appends the codes of `data` (whole blocks of `dtype`, a supported type; the
/// caller checked the length) to `out`.
pub(super) fn append(dtype: GgmlType, data: &[u8], out: &mut Codes) {
    match dtype {
        GgmlType::Q8_0 => {
            for x in data.chunks_exact(34) {
                out.scales.push(half_at(x, 0));
                out.qs.extend(x[2..34].iter().map(|&q| q as i8));
            }
        }
        GgmlType::Q4_0 => {
            for x in data.chunks_exact(18) {
                out.scales.push(half_at(x, 0));
                let qs = &x[2..18];
                out.qs.extend(qs.iter().map(|&q| (q & 0xF) as i8 - 8));
                out.qs.extend(qs.iter().map(|&q| (q >> 4) as i8 - 8));
            }
        }
        GgmlType::Q4_1 => {
            for x in data.chunks_exact(20) {
                out.scales.push(half_at(x, 0));
                out.mins.push(half_at(x, 2));
                let qs = &x[4..20];
                out.qs.extend(qs.iter().map(|&q| (q & 0xF) as i8));
                out.qs.extend(qs.iter().map(|&q| (q >> 4) as i8));
            }
        }
        GgmlType::Q5_0 => {
            for x in data.chunks_exact(22) {
                out.scales.push(half_at(x, 0));
                let qh = u32::from_le_bytes([x[2], x[3], x[4], x[5]]);
                let qs = &x[6..22];
                for (j, q) in qs.iter().enumerate() {
                    let h = ((qh >> j) << 4) & 0x10;
                    out.qs.push(((q & 0xF) as u32 | h) as i8 - 16);
                }
                for (j, q) in qs.iter().enumerate() {
                    let h = (qh >> (j + 12)) & 0x10;
                    out.qs.push(((q >> 4) as u32 | h) as i8 - 16);
                }
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let five = dtype == GgmlType::Q5_K;
            let size = if five { 176 } else { 144 };
            for x in data.chunks_exact(size) {
                let d = half_at(x, 0);
                let dmin = half_at(x, 2);
                let scales = &x[4..16];
                let (qh, qs) = if five {
                    (&x[16..48], &x[48..176])
                } else {
                    (&[][..], &x[16..144])
                };
                for (j, q) in qs.chunks_exact(32).enumerate() {
                    for half in 0..2 {
                        let (sc, m) = scale_min_k4(2 * j + half, scales);
                        out.scales.push(d * sc as f32);
                        out.mins.push(-(dmin * m as f32));
                        let bit = 1u8 << (2 * j + half);
                        for l in 0..32 {
                            let nib = if half == 0 { q[l] & 0xF } else { q[l] >> 4 };
                            let high = if five && qh[l] & bit != 0 { 16 } else { 0 };
                            out.qs.push((nib + high) as i8);
                        }
                    }
                }
            }
        }
        GgmlType::Q6_K => {
            for x in data.chunks_exact(210) {
                let d = half_at(x, 208);
                // Codes in element order, then one scale per 16.
                let mut codes = [0i8; 256];
                for n in 0..2 {
                    let ql = &x[n * 64..n * 64 + 64];
                    let qh = &x[128 + n * 32..128 + n * 32 + 32];
                    let y = &mut codes[n * 128..n * 128 + 128];
                    for l in 0..32 {
                        y[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                        y[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                        y[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                        y[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                    }
                }
                out.qs.extend_from_slice(&codes);
                // Element e uses scale sc[e / 16] (ggml's `is + 2 * (e % 128 / 32)`
                // in each half of 128 is the same index).
                out.scales
                    .extend(x[192..208].iter().map(|&s| d * (s as i8) as f32));
            }
        }
        other => unreachable!("append: {other} has no rewrite (checked by the caller)"),
    }
}
