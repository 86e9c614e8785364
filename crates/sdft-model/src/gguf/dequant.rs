//! Dequantization of ggml tensor data to f32, bit-exact with ggml's
//! `dequantize_row_*` (ggml-quants.c): same block layouts, same f32 operation order.

use half::{bf16, f16, slice::HalfFloatSliceExt};

use super::types::{GgmlType, DEQUANT_TYPES};
use crate::{Error, Result};

/// Dequantizes `data` (whole blocks of `dtype`) into `out`.
///
/// `out.len()` must be the element count of `data`: `data.len() / type_size *
/// block_size`. Supports F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K and Q6_K.
pub fn dequantize(dtype: GgmlType, data: &[u8], out: &mut [f32]) -> Result<()> {
    let (bs, ts) = dtype.block_geometry();
    if !data.len().is_multiple_of(ts) || data.len() / ts * bs != out.len() {
        return Err(Error::Other(format!(
            "dequantize {dtype}: {} bytes do not hold {} elements ({ts} bytes per {bs} elements)",
            data.len(),
            out.len()
        )));
    }
    match dtype {
        GgmlType::F32 => f32s(data, out),
        GgmlType::F16 => f16s(data, out),
        GgmlType::BF16 => bf16s(data, out),
        GgmlType::Q8_0 => q8_0(data, out),
        GgmlType::Q4_0 => q4_0(data, out),
        GgmlType::Q4_1 => q4_1(data, out),
        GgmlType::Q5_0 => q5_0(data, out),
        GgmlType::Q4_K => q4_k(data, out),
        GgmlType::Q5_K => q5_k(data, out),
        GgmlType::Q6_K => q6_k(data, out),
        other => {
            return Err(Error::Other(format!(
                "dequantize: type {other} is not supported (supported: {DEQUANT_TYPES})"
            )))
        }
    }
    Ok(())
}

#[inline(always)]
fn half_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn f32s(data: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

fn f16s(data: &[u8], out: &mut [f32]) {
    // Convert through an aligned stack buffer so `half` can use its SIMD path.
    const CHUNK: usize = 512;
    let mut buf = [f16::ZERO; CHUNK];
    for (o, b) in out.chunks_mut(CHUNK).zip(data.chunks(CHUNK * 2)) {
        let h = &mut buf[..o.len()];
        for (x, p) in h.iter_mut().zip(b.chunks_exact(2)) {
            *x = f16::from_le_bytes([p[0], p[1]]);
        }
        h.convert_to_f32_slice(o);
    }
}

fn bf16s(data: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
        *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}

/// block_q8_0: d (f16), qs[32] (i8).
fn q8_0(data: &[u8], out: &mut [f32]) {
    for (y, x) in out.chunks_exact_mut(32).zip(data.chunks_exact(34)) {
        let d = half_at(x, 0);
        for (o, &q) in y.iter_mut().zip(&x[2..34]) {
            *o = (q as i8) as f32 * d;
        }
    }
}

/// block_q4_0: d (f16), qs[16]; low nibbles are elements 0..16, high 16..32.
fn q4_0(data: &[u8], out: &mut [f32]) {
    for (y, x) in out.chunks_exact_mut(32).zip(data.chunks_exact(18)) {
        let d = half_at(x, 0);
        let (lo, hi) = y.split_at_mut(16);
        for j in 0..16 {
            let q = x[2 + j];
            lo[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            hi[j] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// block_q5_0: d (f16), qh[4] (the fifth bits, little-endian u32), qs[16]; low
/// nibbles with bit `j` of qh are elements 0..16, high nibbles with bit `j + 16`
/// elements 16..32; y = (q - 16) * d.
fn q5_0(data: &[u8], out: &mut [f32]) {
    for (y, x) in out.chunks_exact_mut(32).zip(data.chunks_exact(22)) {
        let d = half_at(x, 0);
        let qh = u32::from_le_bytes([x[2], x[3], x[4], x[5]]);
        let (lo, hi) = y.split_at_mut(16);
        for j in 0..16 {
            let q = x[6 + j];
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            lo[j] = (((q & 0x0F) as u32 | h0) as i32 - 16) as f32 * d;
            hi[j] = (((q >> 4) as u32 | h1) as i32 - 16) as f32 * d;
        }
    }
}

/// block_q4_1: d (f16), m (f16), qs[16]; y = q * d + m.
fn q4_1(data: &[u8], out: &mut [f32]) {
    for (y, x) in out.chunks_exact_mut(32).zip(data.chunks_exact(20)) {
        let d = half_at(x, 0);
        let m = half_at(x, 2);
        let (lo, hi) = y.split_at_mut(16);
        for j in 0..16 {
            let q = x[4 + j];
            lo[j] = (q & 0x0F) as f32 * d + m;
            hi[j] = (q >> 4) as f32 * d + m;
        }
    }
}

/// ggml's `get_scale_min_k4`: the j-th 6-bit scale and min of the 12 packed bytes.
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// block_q4_K: d (f16), dmin (f16), scales[12], qs[128]; 8 sub-blocks of 32.
fn q4_k(data: &[u8], out: &mut [f32]) {
    for (y, x) in out.chunks_exact_mut(256).zip(data.chunks_exact(144)) {
        let d = half_at(x, 0);
        let min = half_at(x, 2);
        let scales = &x[4..16];
        let qs = &x[16..144];
        for (j, (y64, q)) in y.chunks_exact_mut(64).zip(qs.chunks_exact(32)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * j, scales);
            let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let (lo, hi) = y64.split_at_mut(32);
            for l in 0..32 {
                lo[l] = d1 * (q[l] & 0xF) as f32 - m1;
                hi[l] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// block_q5_K: d (f16), dmin (f16), scales[12], qh[32], qs[128].
fn q5_k(data: &[u8], out: &mut [f32]) {
    for (y, x) in out.chunks_exact_mut(256).zip(data.chunks_exact(176)) {
        let d = half_at(x, 0);
        let min = half_at(x, 2);
        let scales = &x[4..16];
        let qh = &x[16..48];
        let qs = &x[48..176];
        for (j, (y64, ql)) in y.chunks_exact_mut(64).zip(qs.chunks_exact(32)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * j, scales);
            let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
            let (lo, hi) = y64.split_at_mut(32);
            for l in 0..32 {
                let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                lo[l] = d1 * ((ql[l] & 0xF) + h1) as f32 - m1;
                hi[l] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
            }
        }
    }
}

/// block_q6_K: ql[128], qh[64], scales[16] (i8), d (f16); two halves of 128.
fn q6_k(data: &[u8], out: &mut [f32]) {
    for (y, x) in out.chunks_exact_mut(256).zip(data.chunks_exact(210)) {
        let d = half_at(x, 208);
        for n in 0..2 {
            let ql = &x[n * 64..n * 64 + 64];
            let qh = &x[128 + n * 32..128 + n * 32 + 32];
            let sc = &x[192 + n * 8..192 + n * 8 + 8];
            let y = &mut y[n * 128..n * 128 + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_block() {
        // d = 0.5, qs[0] = 0x9F: element 0 = (15 - 8) * 0.5, element 16 = (9 - 8) * 0.5.
        let mut block = vec![0u8; 18];
        block[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        block[2] = 0x9F;
        let mut out = vec![0.0; 32];
        dequantize(GgmlType::Q4_0, &block, &mut out).unwrap();
        assert_eq!(out[0], 3.5);
        assert_eq!(out[16], 0.5);
        assert_eq!(out[1], -4.0);
    }

    #[test]
    fn q5_0_block() {
        // d = 0.25; qs[0] = 0x3A, bit 0 of qh set: element 0 = (0xA | 16) - 16 = 10,
        // bit 16 clear: element 16 = 3 - 16 = -13; qs[1] = 0, bit 17 set: element 17 = 0.
        let mut block = vec![0u8; 22];
        block[..2].copy_from_slice(&f16::from_f32(0.25).to_le_bytes());
        block[2..6].copy_from_slice(&(1u32 | 1 << 17).to_le_bytes());
        block[6] = 0x3A;
        let mut out = vec![0.0; 32];
        dequantize(GgmlType::Q5_0, &block, &mut out).unwrap();
        assert_eq!(out[0], 10.0 * 0.25);
        assert_eq!(out[16], -13.0 * 0.25);
        assert_eq!(out[17], 0.0);
        assert_eq!(out[1], -16.0 * 0.25);
    }

    #[test]
    fn scale_min_unpacking() {
        let q: Vec<u8> = (0..12).map(|i| (i * 37 + 200) as u8).collect();
        for j in 0..8 {
            let (s, m) = scale_min_k4(j, &q);
            assert!(s < 64 && m < 64);
        }
        assert_eq!(scale_min_k4(0, &q), (q[0] & 63, q[4] & 63));
        assert_eq!(
            scale_min_k4(5, &q),
            (
                (q[9] & 0xF) | ((q[1] >> 6) << 4),
                (q[9] >> 4) | ((q[5] >> 6) << 4)
            )
        );
    }

    #[test]
    fn size_mismatch_and_unsupported_are_errors() {
        let mut out = vec![0.0; 32];
        assert!(dequantize(GgmlType::Q4_0, &[0u8; 17], &mut out).is_err());
        assert!(dequantize(GgmlType::Q5_0, &[0u8; 21], &mut out).is_err());
        assert!(dequantize(GgmlType::Q5_1, &[0u8; 24], &mut out).is_err());
    }
}
