//! `out = x · wᵀ` against a weight packed once into column panels: the layout a
//! gemm micro-kernel streams, built when the CPU generation path first sees a
//! model and reused by every step after.
//!
//! [`PackedMatrix::pack`] turns PyTorch's `[out, in]` row-major weights into
//! panels of [`PANEL`] output columns: panel `j` holds, for every `p` in
//! `0..in`, the values `w[j * PANEL + c][p]` for `c` in `0..PANEL` side by side
//! (zeros past the last column), 64-byte aligned. The micro-kernel keeps a block
//! of up to a dozen input rows × `PANEL` outputs in vector registers and, for
//! each `p`, loads the panel's `PANEL` values once and multiplies them by each
//! row's `x[r][p]`, broadcast. There are no horizontal sums, every weight value
//! loaded serves every row of the block, and the packed weight is one sequential
//! stream per thread, which the hardware prefetcher follows at full memory
//! bandwidth. (The unpacked kernel, [`super::matmul::matmul_nt`], reads four
//! weight rows as four interleaved streams and reduces every output across
//! lanes; at 16 rows it reached about a fifth of this one's speed.)
//!
//! Every output is one chain of multiply-adds over `p = 0..in` in order, whatever
//! the row block, the thread split or the instruction set's block height, so a
//! row's result does not depend on which rows share its call: generation's
//! outputs do not depend on the batch size.

use super::{Isa, SendPtr};

/// Output columns per panel: two AVX-512 vectors, four AVX2 vectors.
pub const PANEL: usize = 32;

/// One 64-byte line of the packed data (the allocation's unit, for alignment).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

const LINES_PER_P: usize = PANEL / 16;

/// A `[n, k]` weight packed into panels of [`PANEL`] columns (see the module
/// docs).
pub struct PackedMatrix {
    data: Vec<Line>,
    n: usize,
    k: usize,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("n", &self.n)
            .field("k", &self.k)
            .finish()
    }
}

impl PackedMatrix {
    /// Packs `w`, `[n, k]` row-major.
    pub fn pack(w: &[f32], n: usize, k: usize) -> Self {
        Self::pack_stacked(&[(w, n)], k)
    }

    /// Packs several `[n_i, k]` row-major weights stacked along the output
    /// dimension, as one `[sum n_i, k]` matrix: one product then computes all of
    /// them (the q, k and v projections; the gate and up projections).
    ///
    /// # Panics
    /// When a part's length is not `n_i * k` (the caller's shapes come from the
    /// model's config, which the loader checked against every tensor).
    pub fn pack_stacked(parts: &[(&[f32], usize)], k: usize) -> Self {
        for (i, (w, n)) in parts.iter().enumerate() {
            assert_eq!(w.len(), n * k, "pack_stacked: part {i} is not [{n}, {k}]");
        }
        let n: usize = parts.iter().map(|(_, n)| n).sum();
        let panels = n.div_ceil(PANEL);
        let mut data = vec![Line([0.0; 16]); panels * k * LINES_PER_P];
        // Global row j of the stack -> (part, row in part).
        let mut rows: Vec<&[f32]> = Vec::with_capacity(n);
        for (w, _) in parts {
            rows.extend(w.chunks_exact(k));
        }
        let fill = |(panel, lines): (usize, &mut [Line])| {
            let dst = lines_as_floats_mut(lines);
            for c in 0..PANEL {
                let Some(row) = rows.get(panel * PANEL + c) else {
                    break;
                };
                for (p, v) in row.iter().enumerate() {
                    dst[p * PANEL + c] = *v;
                }
            }
        };
        // A model's weights are packed on rayon's pool; the small matrices that
        // training packs inside the kernels' own parallel sections (attention's
        // keys and values) are packed in place, where a trip to another pool
        // would cost more than the copy.
        if n * k >= 1 << 18 {
            use rayon::prelude::*;
            data.par_chunks_mut(k * LINES_PER_P)
                .enumerate()
                .for_each(fill);
        } else {
            data.chunks_mut(k * LINES_PER_P).enumerate().for_each(fill);
        }
        PackedMatrix { data, n, k }
    }

    /// Output columns (`n`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input columns (`k`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<Line>()
    }

    fn panel(&self, j: usize) -> &[f32] {
        let lines = &self.data[j * self.k * LINES_PER_P..(j + 1) * self.k * LINES_PER_P];
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]`: the lines are
        // contiguous floats.
        unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<f32>(), lines.len() * 16) }
    }
}

fn lines_as_floats_mut(lines: &mut [Line]) -> &mut [f32] {
    // SAFETY: as in `PackedMatrix::panel`.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<f32>(), lines.len() * 16) }
}

/// `x[m, k] · wᵀ` as a new `[m, n]` row-major vector.
pub fn matmul_packed(x: &[f32], m: usize, w: &PackedMatrix) -> Vec<f32> {
    let mut out = vec![0f32; m * w.n];
    matmul_packed_into(x, m, w, &mut out);
    out
}

/// `out[m, n] = x[m, k] · wᵀ`, with `x` and `out` row-major and contiguous;
/// every value of `out` is written (its previous contents do not matter).
pub fn matmul_packed_into(x: &[f32], m: usize, w: &PackedMatrix, out: &mut [f32]) {
    let (n, k) = (w.n, w.k);
    assert_eq!(x.len(), m * k, "matmul_packed: x is not [{m}, {k}]");
    assert_eq!(out.len(), m * n, "matmul_packed: out is not [{m}, {n}]");
    if m == 0 || n == 0 {
        return;
    }
    product(Isa::detect(), x, m, w, out);
}

/// [`matmul_packed_into`] with the instruction set given (`isa` must be
/// available on this CPU).
fn product(isa: Isa, x: &[f32], m: usize, w: &PackedMatrix, out: &mut [f32]) {
    let k = w.k;
    thread_local! {
        static PACKED_X: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PACKED_X.with(|cell| {
        let mut fresh = Vec::new();
        let mut held = cell.try_borrow_mut();
        let xp = held.as_deref_mut().unwrap_or(&mut fresh);
        pack_rows(isa, x, m, k, xp);
        run_panels(isa, xp, m, w, out);
    });
}

/// Row blocks of nearly equal height for `isa`: `(first row, rows)`.
fn row_blocks(isa: Isa, m: usize) -> impl Iterator<Item = (usize, usize)> {
    let blocks = m.div_ceil(block_rows(isa)).max(1);
    let (base, extra) = (m / blocks, m % blocks);
    (0..blocks).scan(0, move |r0, b| {
        let rows = base + usize::from(b < extra);
        let at = *r0;
        *r0 += rows;
        Some((at, rows))
    })
}

/// `x` `[m, k]` rearranged block by block ([`row_blocks`]): the block of rows
/// `r0..r0 + rows` becomes `[k, rows]` at offset `r0 * k`, so that the
/// micro-kernel reads the values it broadcasts at step `p` side by side.
fn pack_rows(isa: Isa, x: &[f32], m: usize, k: usize, xp: &mut Vec<f32>) {
    xp.resize(m * k, 0.0);
    let blocks: Vec<(usize, usize)> = row_blocks(isa, m).collect();
    let dst = SendPtr(xp.as_mut_ptr());
    let pack = |b: usize| {
        let (r0, rows) = blocks[b];
        // SAFETY: block `b` alone writes `xp[r0 * k..(r0 + rows) * k]`, inside
        // `xp` (the blocks cover `0..m`), which outlives the run.
        let dst = unsafe { std::slice::from_raw_parts_mut(dst.at(r0 * k), rows * k) };
        let src = &x[r0 * k..(r0 + rows) * k];
        // In tiles of 16 steps: contiguous reads, and the writes of one tile
        // stay within a few cache lines.
        for p0 in (0..k).step_by(16) {
            let p1 = (p0 + 16).min(k);
            for r in 0..rows {
                for (i, v) in src[r * k + p0..r * k + p1].iter().enumerate() {
                    dst[(p0 + i) * rows + r] = *v;
                }
            }
        }
    };
    // Worth a parallel section only for prefill-sized inputs.
    if m * k >= 1 << 16 {
        super::team::Team::global().run(blocks.len(), &pack);
    } else {
        (0..blocks.len()).for_each(pack);
    }
}

/// The panels of `w` against the packed rows `xp`, spread over the kernels'
/// thread team in contiguous ranges (one stream through the packed weight per
/// thread; see [`super::team::Team::run_split`]), each panel prefetching the
/// next one its thread will take.
fn run_panels(isa: Isa, xp: &[f32], m: usize, w: &PackedMatrix, out: &mut [f32]) {
    let panels = w.n.div_ceil(PANEL);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let run = |j: usize, next: Option<usize>| {
        // SAFETY: this call alone writes columns of panel j, and `out` outlives
        // the section.
        unsafe { panel_product(isa, xp, m, w, j, next.map(|n| w.panel(n)), out_ptr) };
    };
    if 2 * m * w.n * w.k < 1 << 18 {
        (0..panels).for_each(|j| run(j, (j + 1 < panels).then_some(j + 1)));
    } else {
        super::team::Team::global().run_split(panels, &run);
    }
}

/// Steps of a panel per slice when it is walked in slices (32 columns × 128
/// steps: 16 KiB, half of a 32 KiB L1).
const K_SLICE: usize = 128;
/// Row blocks from which a panel is walked in slices.
const SLICE_MIN_BLOCKS: usize = 8;

/// Rows per register block for `isa`.
fn block_rows(isa: Isa) -> usize {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => 12,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => 3,
        Isa::Portable => 4,
    }
}

/// Every row of `out` for the columns of panel `j`, block by block
/// ([`row_blocks`]); `x` is packed ([`pack_rows`]).
///
/// # Safety
/// `out` must point to `m * w.n` floats, and no other thread may write panel
/// `j`'s columns at the same time.
unsafe fn panel_product(
    isa: Isa,
    x: &[f32],
    m: usize,
    w: &PackedMatrix,
    j: usize,
    next: Option<&[f32]>,
    out: SendPtr,
) {
    let (n, k) = (w.n, w.k);
    let panel = w.panel(j);
    let col0 = j * PANEL;
    let cols = (n - col0).min(PANEL);
    let blocks = row_blocks(isa, m).count();
    // With many row blocks the panel is walked once per block: in slices of
    // K_SLICE steps it stays in L1 across them (the accumulators go through
    // `out` between slices, which leaves every output's chain of multiply-adds
    // and so its value unchanged). With few rows one pass streams the panel.
    let slice = if blocks >= SLICE_MIN_BLOCKS {
        K_SLICE
    } else {
        k
    };
    for k0 in (0..k).step_by(slice.max(1)) {
        let kl = slice.min(k - k0);
        for (b, (r0, rows)) in row_blocks(isa, m).enumerate() {
            let xb = &x[r0 * k + k0 * rows..r0 * k + (k0 + kl) * rows];
            let wk = &panel[k0 * PANEL..(k0 + kl) * PANEL];
            let o = out.0.add(r0 * n + col0);
            // In one pass, the blocks fetch the next panel into L2 as they go,
            // each its share (block b of B: the b-th B-th of the panel, one step
            // every B steps), so that memory streams at an even pace for the
            // whole panel, also while the later blocks compute from cache.
            let pf = match next {
                Some(nx) if slice >= k => nx.as_ptr().wrapping_add(b * k / blocks * PANEL),
                _ => std::ptr::null(),
            };
            let acc_in = k0 > 0;
            match isa {
                // SAFETY: the features were detected at run time; `xb` holds `kl`
                // steps of `rows` values, `wk` `kl` steps of PANEL, and `o` `rows`
                // rows of stride `n` with `cols` writable columns (holding the sums
                // of the earlier slices when `acc_in`).
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 | Isa::Avx2 => {
                    let block: x86::Block = match isa {
                        Isa::Avx512 => x86::block_avx512,
                        _ => x86::block_avx2,
                    };
                    block(
                        xb.as_ptr(),
                        rows,
                        kl,
                        wk.as_ptr(),
                        (pf, blocks),
                        o,
                        n,
                        cols,
                        acc_in,
                    )
                }
                Isa::Portable => block_portable(xb, rows, kl, wk, o, n, cols, acc_in),
            }
        }
    }
}

/// # Safety
/// As for the vector blocks: `out` holds `rows` rows of stride `ldo` with `cols`
/// writable columns (and, with `acc_in`, the sums so far to continue from).
#[allow(clippy::too_many_arguments)]
unsafe fn block_portable(
    x: &[f32],
    rows: usize,
    k: usize,
    panel: &[f32],
    out: *mut f32,
    ldo: usize,
    cols: usize,
    acc_in: bool,
) {
    for r in 0..rows {
        let mut acc = [0f32; PANEL];
        if acc_in {
            std::ptr::copy_nonoverlapping(out.add(r * ldo), acc.as_mut_ptr(), cols);
        }
        for p in 0..k {
            let xv = x[p * rows + r];
            let wp = &panel[p * PANEL..(p + 1) * PANEL];
            for c in 0..PANEL {
                acc[c] += xv * wp[c];
            }
        }
        for (c, v) in acc.iter().enumerate().take(cols) {
            *out.add(r * ldo + c) = *v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::PANEL;
    use std::arch::x86_64::*;

    /// The signature every instruction set's block function shares.
    pub type Block = unsafe fn(
        *const f32,
        usize,
        usize,
        *const f32,
        (*const f32, usize),
        *mut f32,
        usize,
        usize,
        bool,
    );

    /// Defines the block function of one instruction set from the one body
    /// below: `M` rows (a literal count from `$rows`, so that the accumulators
    /// have a constant shape and live in registers) × one panel of `$v` vectors
    /// of `$lanes` lanes.
    macro_rules! block_fn {
        ($(#[$doc:meta])* $name:ident, $feature:literal, $lanes:literal, $v:literal,
         $zero:ident, $load:ident, $loadu:ident, $set1:ident, $fma:ident, $store:ident,
         [$($rows:literal)*]) => {
            $(#[$doc])*
            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn $name(
                x: *const f32,
                rows: usize,
                k: usize,
                w: *const f32,
                pf: (*const f32, usize),
                out: *mut f32,
                ldo: usize,
                cols: usize,
                acc_in: bool,
            ) {
                #[target_feature(enable = $feature)]
                #[inline]
                unsafe fn rows_of<const M: usize>(
                    x: *const f32,
                    k: usize,
                    w: *const f32,
                    pf: (*const f32, usize),
                    out: *mut f32,
                    ldo: usize,
                    cols: usize,
                    acc_in: bool,
                ) {
                    let (mut pf_at, mut countdown) = (pf.0, 0usize);
                    let mut acc = [[$zero(); $v]; M];
                    if acc_in {
                        for r in 0..M {
                            let mut row = [0f32; PANEL];
                            std::ptr::copy_nonoverlapping(out.add(r * ldo), row.as_mut_ptr(), cols);
                            for i in 0..$v {
                                acc[r][i] = $loadu(row.as_ptr().add($lanes * i));
                            }
                        }
                    }
                    for p in 0..k {
                        if !pf_at.is_null() {
                            if countdown == 0 {
                                _mm_prefetch::<_MM_HINT_T1>(pf_at as *const i8);
                                _mm_prefetch::<_MM_HINT_T1>(pf_at.wrapping_add(16) as *const i8);
                                pf_at = pf_at.wrapping_add(PANEL);
                                countdown = pf.1;
                            }
                            countdown -= 1;
                        }
                        // More accumulators than AVX2's 16 registers leave room
                        // for all the weight vectors: hold the broadcasts and read
                        // one weight vector at a time. (Either order keeps every
                        // output's chain of multiply-adds, so the same values.)
                        if M * $v > 8 && $v > 2 {
                            let mut xb = [$zero(); M];
                            for (r, b) in xb.iter_mut().enumerate() {
                                *b = $set1(*x.add(p * M + r));
                            }
                            for i in 0..$v {
                                let wv = $load(w.add(p * PANEL + $lanes * i));
                                for r in 0..M {
                                    acc[r][i] = $fma(xb[r], wv, acc[r][i]);
                                }
                            }
                        } else {
                        let mut wv = [$zero(); $v];
                        for (i, v) in wv.iter_mut().enumerate() {
                            *v = $load(w.add(p * PANEL + $lanes * i));
                        }
                        for r in 0..M {
                            let xb = $set1(*x.add(p * M + r));
                            for i in 0..$v {
                                acc[r][i] = $fma(xb, wv[i], acc[r][i]);
                            }
                        }
                        }
                    }
                    for r in 0..M {
                        let mut row = [0f32; PANEL];
                        for i in 0..$v {
                            $store(row.as_mut_ptr().add($lanes * i), acc[r][i]);
                        }
                        std::ptr::copy_nonoverlapping(row.as_ptr(), out.add(r * ldo), cols);
                    }
                }
                match rows {
                    $($rows => rows_of::<$rows>(x, k, w, pf, out, ldo, cols, acc_in),)*
                    r => unreachable!("no register block of {r} rows"),
                }
            }
        };
    }

    block_fn!(
        /// Up to 12 rows × one panel with AVX-512: 24 accumulators.
        ///
        /// # Safety
        /// AVX-512F must be available; `x` holds `k` steps of `rows` values, `w`
        /// a panel of `k` steps, `out` `rows` rows of stride `ldo` with `cols`
        /// writable columns, which with `acc_in` hold the sums to continue
        /// from. `pf.0`, unless null, is where to prefetch from, one
        /// panel step every `pf.1` steps (a prefetch never faults, whatever the
        /// address).
        block_avx512, "avx512f", 16, 2,
        _mm512_setzero_ps, _mm512_load_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps,
        [1 2 3 4 5 6 7 8 9 10 11 12]
    );

    block_fn!(
        /// Up to 3 rows × one panel with AVX2 + FMA: 12 accumulators, the three
        /// rows' broadcasts and one weight vector at a time (16 registers).
        ///
        /// # Safety
        /// AVX2 and FMA must be available; otherwise as [`block_avx512`].
        block_avx2, "avx2,fma", 8, 4,
        _mm256_setzero_ps, _mm256_load_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps,
        [1 2 3]
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, reference, values, AWKWARD_SHAPES};

    #[test]
    fn matches_a_float64_reference_at_awkward_shapes() {
        for &(m, k, n) in AWKWARD_SHAPES {
            let x = values(m * k, 1 + m as u32);
            let w = values(n * k, 7 + n as u32);
            let want = reference(&x, &w, m, k, n);
            let packed = PackedMatrix::pack(&w, n, k);
            let mut isas = vec![Isa::detect(), Isa::Portable];
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                isas.push(Isa::Avx2);
            }
            for isa in isas {
                let mut got = vec![0f32; m * n];
                product(isa, &x, m, &packed, &mut got);
                assert_close(&got, &want, &format!("{isa:?} m={m} k={k} n={n}"));
            }
        }
    }

    #[test]
    fn panels_walked_in_slices_give_the_one_pass_results_bit_for_bit() {
        // Enough rows for SLICE_MIN_BLOCKS register blocks at every block height,
        // and k over several slices with a ragged last one; n ends in a partial
        // panel.
        let (m, k, n) = (12 * SLICE_MIN_BLOCKS + 5, 2 * K_SLICE + 37, 45);
        let x = values(m * k, 11);
        let w = values(n * k, 12);
        let want = reference(&x, &w, m, k, n);
        let packed = PackedMatrix::pack(&w, n, k);
        let mut isas = vec![Isa::detect(), Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            isas.push(Isa::Avx2);
        }
        for isa in isas {
            let mut batch = vec![0f32; m * n];
            product(isa, &x, m, &packed, &mut batch);
            assert_close(&batch, &want, &format!("{isa:?} sliced"));
            for i in [0, 1, m / 2, m - 1] {
                let mut one = vec![0f32; n];
                product(isa, &x[i * k..(i + 1) * k], 1, &packed, &mut one);
                assert_eq!(one, batch[i * n..(i + 1) * n], "{isa:?} row {i}");
            }
        }
    }

    #[test]
    fn stacked_parts_equal_separate_products_and_rows_do_not_depend_on_the_batch() {
        let (k, m) = (96, 17);
        let a = values(40 * k, 3);
        let b = values(9 * k, 4);
        let x = values(m * k, 5);
        let stacked = matmul_packed(&x, m, &PackedMatrix::pack_stacked(&[(&a, 40), (&b, 9)], k));
        let pa = matmul_packed(&x, m, &PackedMatrix::pack(&a, 40, k));
        let pb = matmul_packed(&x, m, &PackedMatrix::pack(&b, 9, k));
        for i in 0..m {
            assert_eq!(&stacked[i * 49..i * 49 + 40], &pa[i * 40..(i + 1) * 40]);
            assert_eq!(&stacked[i * 49 + 40..(i + 1) * 49], &pb[i * 9..(i + 1) * 9]);
        }
        // Each row alone gives bit-identical results to the same row in the batch.
        let w = PackedMatrix::pack(&a, 40, k);
        for i in [0, 5, 16] {
            let one = matmul_packed(&x[i * k..(i + 1) * k], 1, &w);
            assert_eq!(one, pa[i * 40..(i + 1) * 40]);
        }
    }
}
