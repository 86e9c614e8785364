//! `out = x · wᵀ` for a weight kept in PyTorch's `[out, in]` row-major layout,
//! without packing: every output is a dot product of an input row with a weight
//! row, both contiguous. Tiles of 4 input rows × 4 weight rows keep 16
//! accumulators in registers, so each weight row is read from memory once per
//! call and reused for 4 input rows from cache. Work is split over weight rows
//! across rayon's pool, not the kernels' spinning team: this product runs
//! inside the generic burn forward (scoring, evaluation), between burn-flex's own
//! operations on that pool, where a spinning thread would take a core from them.
//!
//! A general gemm packs both operands first; at the row counts generation runs
//! (1 to a few dozen rows per step) that packing streams every weight matrix
//! twice more than the product itself needs, and it dominated the decode
//! profile.

use super::{Isa, SendPtr};

/// Input rows per tile.
const MR: usize = 4;
/// Weight rows per tile.
const NR: usize = 4;
/// Input rows kept hot in cache while a chunk of weight rows streams past (a
/// block sized for L1 by `k` measured no better on this machine).
const M_BLOCK: usize = 64;
/// How far ahead (in weight rows) the weights are prefetched.
const PREFETCH_ROWS: usize = 2 * NR;
/// Input rows from which prefetching pays: with fewer, the product is bound by
/// memory bandwidth and the hardware prefetcher keeps up.
const PREFETCH_MIN_ROWS: usize = 4;

/// `out[m, n] = x[m, k] · w[n, k]ᵀ`, with `x` and `w` row-major and contiguous.
pub fn matmul_nt(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert_eq!(x.len(), m * k, "matmul_nt: x is not [m, k]");
    assert_eq!(w.len(), n * k, "matmul_nt: w is not [n, k]");
    let mut out = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return out;
    }
    let threads = rayon::current_num_threads().max(1);
    let flops = 2 * m * n * k;
    // Chunks of weight rows: a few per thread, a multiple of NR.
    let chunk = if flops < 1 << 18 || threads == 1 {
        n
    } else {
        let per = n.div_ceil(threads * 4);
        per.div_ceil(NR).max(4) * NR
    };
    let out_ptr = SendPtr(out.as_mut_ptr());
    let run = |j0: usize| {
        let j1 = (j0 + chunk).min(n);
        // SAFETY: every task writes only columns j0..j1 of `out`, disjoint from
        // every other task's columns, and `out` outlives the scope.
        unsafe { block(x, w, m, k, n, j0, j1, out_ptr) };
    };
    if chunk >= n {
        run(0);
    } else {
        use rayon::prelude::*;
        (0..n.div_ceil(chunk))
            .into_par_iter()
            .for_each(|c| run(c * chunk));
    }
    out
}

/// Columns `j0..j1` of `out` for every row.
///
/// # Safety
/// `out` must point to `m * n` floats, and no other thread may write columns
/// `j0..j1` at the same time.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    x: &[f32],
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
    j0: usize,
    j1: usize,
    out: SendPtr,
) {
    let isa = Isa::detect();
    for i0 in (0..m).step_by(M_BLOCK) {
        let i1 = (i0 + M_BLOCK).min(m);
        let mut j = j0;
        while j < j1 {
            let nr = (j1 - j).min(NR);
            let mut i = i0;
            while i < i1 {
                let mr = (i1 - i).min(MR);
                let mut acc = [[0f32; NR]; MR];
                // While the first input tile meets these weight rows, the rows
                // PREFETCH_ROWS ahead are fetched into L2: the next rows are the
                // next bytes in memory, but as NR interleaved short streams the
                // hardware prefetcher picks them up late.
                let ahead = j + PREFETCH_ROWS;
                let pf =
                    (i == i0 && m >= PREFETCH_MIN_ROWS && ahead + nr <= n).then_some(ahead * k);
                tile(isa, &x[i * k..], w, j * k, pf, k, mr, nr, &mut acc);
                for (r, row) in acc.iter().enumerate().take(mr) {
                    for (c, v) in row.iter().enumerate().take(nr) {
                        *out.0.add((i + r) * n + j + c) = *v;
                    }
                }
                i += mr;
            }
            j += nr;
        }
    }
}

/// Dot products of `mr` rows of `x` with the `nr` rows of `w` starting at
/// offset `at` (row stride `k`); with `prefetch`, the `nr` rows at that offset
/// are prefetched along the way.
#[allow(clippy::too_many_arguments)]
fn tile(
    isa: Isa,
    x: &[f32],
    w: &[f32],
    at: usize,
    prefetch: Option<usize>,
    k: usize,
    mr: usize,
    nr: usize,
    acc: &mut [[f32; NR]; MR],
) {
    assert!(x.len() >= mr * k && w.len() >= at + nr * k);
    assert!(prefetch.is_none_or(|p| w.len() >= p + nr * k));
    #[cfg(target_arch = "x86_64")]
    let pf = prefetch.map_or(std::ptr::null(), |p| w[p..].as_ptr());
    let wt = &w[at..];
    match isa {
        // SAFETY: the features were detected at run time; the bounds are checked
        // above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::tile_avx512(x.as_ptr(), wt.as_ptr(), pf, k, mr, nr, acc) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::tile_avx2(x.as_ptr(), wt.as_ptr(), pf, k, mr, nr, acc) },
        Isa::Portable => tile_portable(x, wt, k, mr, nr, acc),
    }
}

fn tile_portable(x: &[f32], w: &[f32], k: usize, mr: usize, nr: usize, acc: &mut [[f32; NR]; MR]) {
    for (r, row) in acc.iter_mut().enumerate().take(mr) {
        let xr = &x[r * k..r * k + k];
        for (c, v) in row.iter_mut().enumerate().take(nr) {
            let wr = &w[c * k..c * k + k];
            let mut lanes = [0f32; 8];
            let mut xc = xr.chunks_exact(8);
            let mut wc = wr.chunks_exact(8);
            for (a, b) in (&mut xc).zip(&mut wc) {
                for l in 0..8 {
                    lanes[l] += a[l] * b[l];
                }
            }
            let mut s: f32 = lanes.iter().sum();
            for (a, b) in xc.remainder().iter().zip(wc.remainder()) {
                s += a * b;
            }
            *v = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// Calls `$f::<m, n>(args)` for the tile shape `(mr, nr)` with literal sizes,
    /// so every accumulator array has a constant length and lives in registers.
    macro_rules! dispatch {
        ($f:ident, $mr:expr, $nr:expr, ($($arg:expr),*)) => {
            match ($mr, $nr) {
                (4, 4) => $f::<4, 4>($($arg),*),
                (4, 3) => $f::<4, 3>($($arg),*),
                (4, 2) => $f::<4, 2>($($arg),*),
                (4, 1) => $f::<4, 1>($($arg),*),
                (3, 4) => $f::<3, 4>($($arg),*),
                (3, 3) => $f::<3, 3>($($arg),*),
                (3, 2) => $f::<3, 2>($($arg),*),
                (3, 1) => $f::<3, 1>($($arg),*),
                (2, 4) => $f::<2, 4>($($arg),*),
                (2, 3) => $f::<2, 3>($($arg),*),
                (2, 2) => $f::<2, 2>($($arg),*),
                (2, 1) => $f::<2, 1>($($arg),*),
                (1, 4) => $f::<1, 4>($($arg),*),
                (1, 3) => $f::<1, 3>($($arg),*),
                (1, 2) => $f::<1, 2>($($arg),*),
                _ => $f::<1, 1>($($arg),*),
            }
        };
    }

    /// Defines the tile function of one instruction set from the one body below:
    /// `MR x NR` accumulators of `$lanes` lanes, the weight rows of the next tile
    /// prefetched once per 64 bytes, and every row's four accumulators reduced by
    /// `$reduce4` (missing columns as zeros, so every output goes through the same
    /// reduction whatever the tile shape: results never depend on how rows and
    /// columns were split).
    macro_rules! tile_fn {
        ($(#[$doc:meta])* $name:ident, $feature:literal, $lanes:literal,
         $zero:ident, $load:ident, $fma:ident, $reduce4:ident) => {
            $(#[$doc])*
            #[target_feature(enable = $feature)]
            pub unsafe fn $name(
                x: *const f32,
                w: *const f32,
                pf: *const f32,
                k: usize,
                mr: usize,
                nr: usize,
                acc: &mut [[f32; NR]; MR],
            ) {
                #[target_feature(enable = $feature)]
                #[inline]
                unsafe fn shape<const M: usize, const N: usize>(
                    x: *const f32,
                    w: *const f32,
                    pf: *const f32,
                    k: usize,
                    acc: &mut [[f32; NR]; MR],
                ) {
                    let mut a = [[$zero(); N]; M];
                    let kv = k / $lanes * $lanes;
                    let mut p = 0;
                    while p < kv {
                        let mut xs = [$zero(); M];
                        for r in 0..M {
                            xs[r] = $load(x.add(r * k + p));
                        }
                        for c in 0..N {
                            if !pf.is_null() && p % 16 == 0 {
                                _mm_prefetch::<_MM_HINT_T1>(pf.add(c * k + p) as *const i8);
                            }
                            let wv = $load(w.add(c * k + p));
                            for r in 0..M {
                                a[r][c] = $fma(xs[r], wv, a[r][c]);
                            }
                        }
                        p += $lanes;
                    }
                    let z = $zero();
                    for r in 0..M {
                        let col = |c: usize| if c < N { a[r][c] } else { z };
                        let sums = $reduce4(col(0), col(1), col(2), col(3));
                        for c in 0..N {
                            let mut s = sums[c];
                            for q in kv..k {
                                s += *x.add(r * k + q) * *w.add(c * k + q);
                            }
                            acc[r][c] = s;
                        }
                    }
                }
                dispatch!(shape, mr, nr, (x, w, pf, k, acc))
            }
        };
    }

    tile_fn!(
        /// One tile with AVX-512.
        ///
        /// # Safety
        /// AVX-512F must be available; `x` must hold `mr` rows and `w` `nr` rows
        /// of `k` (and `pf`, when not null, `nr` rows of `k`).
        tile_avx512, "avx512f", 16,
        _mm512_setzero_ps, _mm512_loadu_ps, _mm512_fmadd_ps, reduce4_avx512
    );

    tile_fn!(
        /// One tile with AVX2 + FMA.
        ///
        /// # Safety
        /// AVX2 and FMA must be available; `x` must hold `mr` rows and `w` `nr`
        /// rows of `k` (and `pf`, when not null, `nr` rows of `k`).
        tile_avx2, "avx2,fma", 8,
        _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps, reduce4_avx2
    );

    /// The lane sums of four vectors, `[sum(a), sum(b), sum(c), sum(d)]`, with a
    /// transpose-and-add tree (about half the work of four separate reductions).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn reduce4_avx512(a: __m512, b: __m512, c: __m512, d: __m512) -> [f32; 4] {
        // Per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d.
        let ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        let cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
        // Per 128-bit lane: [a, b, c, d] partial sums.
        let (abd, cdd) = (_mm512_castps_pd(ab), _mm512_castps_pd(cd));
        let lo = _mm512_castpd_ps(_mm512_unpacklo_pd(abd, cdd));
        let hi = _mm512_castpd_ps(_mm512_unpackhi_pd(abd, cdd));
        let v = _mm512_add_ps(lo, hi);
        let x01 = _mm_add_ps(
            _mm512_extractf32x4_ps::<0>(v),
            _mm512_extractf32x4_ps::<1>(v),
        );
        let x23 = _mm_add_ps(
            _mm512_extractf32x4_ps::<2>(v),
            _mm512_extractf32x4_ps::<3>(v),
        );
        let mut out = [0f32; 4];
        _mm_storeu_ps(out.as_mut_ptr(), _mm_add_ps(x01, x23));
        out
    }

    /// The lane sums of four vectors, each reduced on its own.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn reduce4_avx2(a: __m256, b: __m256, c: __m256, d: __m256) -> [f32; 4] {
        [hsum256(a), hsum256(b), hsum256(c), hsum256(d)]
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn hsum256(v: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(v, 1);
        let lo = _mm256_castps256_ps128(v);
        let s = _mm_add_ps(hi, lo);
        let s = _mm_hadd_ps(s, s);
        let s = _mm_hadd_ps(s, s);
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, reference, values, AWKWARD_SHAPES};

    fn check(m: usize, k: usize, n: usize, isa: Isa) {
        let x = values(m * k, 1 + m as u32);
        let w = values(n * k, 7 + n as u32);
        let want = reference(&x, &w, m, k, n);
        let got = if isa == Isa::detect() {
            matmul_nt(&x, &w, m, k, n)
        } else {
            let mut out = vec![0f32; m * n];
            for i in 0..m {
                for j in 0..n {
                    let mut acc = [[0f32; NR]; MR];
                    tile(isa, &x[i * k..], &w, j * k, None, k, 1, 1, &mut acc);
                    out[i * n + j] = acc[0][0];
                }
            }
            out
        };
        assert_close(&got, &want, &format!("{isa:?} m={m} k={k} n={n}"));
    }

    #[test]
    fn matches_a_float64_reference_at_awkward_shapes() {
        for &(m, k, n) in AWKWARD_SHAPES {
            check(m, k, n, Isa::detect());
            check(m, k, n, Isa::Portable);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                check(m, k, n, Isa::Avx2);
            }
        }
    }
}
