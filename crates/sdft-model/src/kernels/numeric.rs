//! The numeric helpers of the CPU kernels, shared by the forward step
//! ([`super::decode`]) and the training kernels ([`super::train`]): RMSNorm,
//! RoPE, SwiGLU, and the vector primitives (`exp`, `dot`, `axpy`, `sum`, the
//! maximum) written as plain loops over fixed-width chunks so that they
//! vectorize inside the multiversioned bodies.

// Loops index explicitly so that they vectorize inside the multiversioned bodies.
#![allow(clippy::needless_range_loop)]

use super::SendPtr;

/// `f32` lanes of one vector (AVX-512): the chunk width of the reductions, and
/// the attention kernels' narrower block.
pub(crate) const LANES: usize = 16;

multiversion! {
    /// `x * w / sqrt(mean(x^2) + eps)` for each row of `x` `[rows, d]`.
    pub(crate) fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) -> () {
        let d = w.len();
        for (o, r) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let ss = dot(r, r);
            let scale = 1.0 / (ss / d as f32 + eps).sqrt();
            for i in 0..d {
                o[i] = r[i] * scale * w[i];
            }
        }
    }
}

/// Rotate-half RoPE of every head of one token, in place: `x` holds `heads`
/// vectors of `cos.len()` values.
pub(crate) fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let d = cos.len();
    let half = d / 2;
    for head in x.chunks_exact_mut(d) {
        for i in 0..half {
            let (a, b) = (head[i], head[i + half]);
            head[i] = a * cos[i] - b * sin[i];
            head[i + half] = b * cos[i + half] + a * sin[i + half];
        }
    }
}

multiversion! {
    /// `x += y`, elementwise over their common length.
    pub(crate) fn add_into(x: &mut [f32], y: &[f32]) -> () {
        let n = x.len().min(y.len());
        for i in 0..n {
            x[i] += y[i];
        }
    }
}

/// [`swiglu`] over the kernels' thread team in blocks of rows, when there are
/// enough rows (a prefill) to pay for a parallel section.
pub(crate) fn swiglu_rows(gate_up: &[f32], hidden: usize, out: &mut [f32]) {
    const ROWS: usize = 16;
    let rows = out.len() / hidden;
    if rows < 2 * ROWS {
        return swiglu(gate_up, hidden, out);
    }
    let out_ptr = SendPtr(out.as_mut_ptr());
    super::team::Team::global().run(rows.div_ceil(ROWS), &|c| {
        let (r0, r1) = (c * ROWS, ((c + 1) * ROWS).min(rows));
        // SAFETY: chunk `c` alone writes rows `r0..r1` of `out`, which outlives
        // the run.
        let o =
            unsafe { std::slice::from_raw_parts_mut(out_ptr.at(r0 * hidden), (r1 - r0) * hidden) };
        swiglu(&gate_up[r0 * 2 * hidden..r1 * 2 * hidden], hidden, o);
    });
}

multiversion! {
    /// `silu(gate) * up` for rows of `[gate | up]` (`2 * hidden` values each).
    pub(crate) fn swiglu(gate_up: &[f32], hidden: usize, out: &mut [f32]) -> () {
        for (o, gu) in out.chunks_exact_mut(hidden).zip(gate_up.chunks_exact(2 * hidden)) {
            let (gate, up) = gu.split_at(hidden);
            for i in 0..hidden {
                let g = gate[i];
                o[i] = up[i] * (g / (1.0 + exp(-g)));
            }
        }
    }
}

/// The largest of `v` (NEG_INFINITY when empty), in lanes.
#[inline(always)]
pub(crate) fn max_of(v: &[f32]) -> f32 {
    let full = v.len() / LANES * LANES;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for c in v[..full].chunks_exact(LANES) {
        for l in 0..LANES {
            lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for x in lanes.iter().chain(&v[full..]) {
        m = if *x > m { *x } else { m };
    }
    m
}

multiversion! {
    /// `ln Σ e^v` over a row (of logits, say), `NEG_INFINITY` for an empty
    /// row: the maximum taken out, [`exp`] in 16 lanes, each lane summed in
    /// `f32` over chunks of 64 values and the chunks in `f64` (about `1e-6`
    /// from a float64 computation on a 151,936-wide row, and about 15 times
    /// faster than `f64::exp` per value).
    pub(crate) fn log_sum_exp(v: &[f32]) -> f64 {
        const CHUNK: usize = 16 * 64;
        let m = max_of(v);
        if !m.is_finite() {
            return m as f64;
        }
        let mut total = 0f64;
        for c in v.chunks(CHUNK) {
            let full = c.len() / 16 * 16;
            let mut lanes = [0f32; 16];
            let mut i = 0;
            while i < full {
                let x = &c[i..i + 16];
                for l in 0..16 {
                    lanes[l] += exp(x[l] - m);
                }
                i += 16;
            }
            let mut s = 0f64;
            for l in lanes {
                s += l as f64;
            }
            for x in &c[full..] {
                s += exp(x - m) as f64;
            }
            total += s;
        }
        m as f64 + total.ln()
    }
}

/// `e^x` to about 2 ulp, in plain arithmetic so that loops over it vectorize
/// (range reduction by `ln 2`, a degree-6 polynomial, the exponent set by bits).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `o += w * v`, in fixed 16-lane chunks (vectorizes without a runtime trip-count
/// or alias check on the short head vectors).
#[inline(always)]
pub(crate) fn axpy(o: &mut [f32], w: f32, v: &[f32]) {
    let n = o.len().min(v.len());
    let full = n / 16 * 16;
    let mut i = 0;
    while i < full {
        let (oc, vc) = (&mut o[i..i + 16], &v[i..i + 16]);
        for l in 0..16 {
            oc[l] += w * vc[l];
        }
        i += 16;
    }
    for j in full..n {
        o[j] += w * v[j];
    }
}

/// The sum of `v`, accumulated in 16 lanes (vectorizes; a single running sum
/// would not, float addition not being associative).
#[inline(always)]
pub(crate) fn sum(v: &[f32]) -> f32 {
    let full = v.len() / 16 * 16;
    let mut lanes = [0f32; 16];
    let mut i = 0;
    while i < full {
        let x = &v[i..i + 16];
        for l in 0..16 {
            lanes[l] += x[l];
        }
        i += 16;
    }
    let mut s = 0f32;
    for l in lanes {
        s += l;
    }
    for x in &v[full..] {
        s += x;
    }
    s
}

#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let full = n / 16 * 16;
    let mut lanes = [0f32; 16];
    let mut i = 0;
    while i < full {
        let (x, y) = (&a[i..i + 16], &b[i..i + 16]);
        for l in 0..16 {
            lanes[l] += x[l] * y[l];
        }
        i += 16;
    }
    let mut s = 0f32;
    for v in lanes {
        s += v;
    }
    for j in full..n {
        s += a[j] * b[j];
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_sum_exp_matches_float64_on_a_vocabulary_wide_row() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for (width, spread) in [(151_936usize, 12.0f32), (49_152, 30.0), (37, 3.0), (1, 1.0)] {
            let v: Vec<f32> = (0..width)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * spread
                })
                .collect();
            let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let want = m + v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
            let got = super::log_sum_exp(&v);
            assert!((got - want).abs() < 1e-5, "width {width}: {got} vs {want}");
        }
        assert_eq!(super::log_sum_exp(&[]), f64::NEG_INFINITY);
    }
}
