//! [`QuantPanels`]: a [`QuantMatrix`]'s codes interleaved for the product, eight
//! weight rows at a time, and the product on 8-bit input rows.
//!
//! Panel `P` holds rows `8P..8P + 8` (zero rows past the last), block by block
//! of 32 steps, in one byte stream: for every four steps `p..p + 4`, the eight
//! rows' four codes side by side (32 bytes, one AVX2 vector; 256 per block),
//! then the block's eight rows' scales (sixteen for 16-step groups) and, for
//! types with offsets, their eight offsets, as `f32`. A thread's range of
//! panels is then one sequential stream (with codes, scales and offsets in
//! separate arrays, batch-1 decoding ran at 65-80% of this rate, depending on
//! where the allocator had put the arrays). The
//! kernel broadcasts an input row's four codes at those steps to all eight rows,
//! multiplies byte by byte (`maddubs`: |w| as unsigned bytes against x with w's
//! sign, two products per 16-bit lane, then `madd` to 32 bits: eight rows' sums
//! of four products per two instructions), sums in 32-bit integers over a group,
//! and scales the eight rows' sums by their scales and the row's block scale in
//! one multiply-add. Every weight vector loaded serves up to four input rows, and
//! there is no horizontal sum. Each output's chain of operations is the same
//! whatever rows share its call, so results do not depend on the batch.

use super::rows::{QuantRows, RowParts};
use super::QuantMatrix;
use crate::kernels::{Isa, SendPtr};

/// Weight rows per panel (one 32-bit lane each in an AVX2 vector).
pub const ROWS: usize = 8;
/// Input rows per register block.
pub(super) const BLOCK_ROWS: usize = 4;

/// A `[n, k]` quantized weight in panels of [`ROWS`] rows (see the module
/// docs).
#[derive(Clone)]
pub struct QuantPanels {
    n: usize,
    k: usize,
    group: usize,
    offsets: bool,
    /// Panels of `k / 32` blocks of [`QuantPanels::block_bytes`] bytes.
    data: Vec<u8>,
    source: String,
}

impl std::fmt::Debug for QuantPanels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantPanels")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("source", &self.source)
            .finish()
    }
}

impl QuantPanels {
    /// `m`'s codes, scales and offsets in panels.
    pub fn new(m: &QuantMatrix) -> Self {
        let (n, k, g) = (m.n, m.k, m.group);
        let offsets = !m.mins.is_empty();
        let mut out = QuantPanels {
            n,
            k,
            group: g,
            offsets,
            data: Vec::new(),
            source: m.source.clone(),
        };
        let bb = out.block_bytes();
        let blocks = k / 32;
        let panels = n.div_ceil(ROWS);
        out.data = vec![0u8; panels * blocks * bb];
        let put = |data: &mut [u8], at: usize, v: f32| {
            data[at..at + 4].copy_from_slice(&v.to_le_bytes());
        };
        for j in 0..n {
            let (pn, r) = (j / ROWS, j % ROWS);
            for b in 0..blocks {
                let at = (pn * blocks + b) * bb;
                let q = &m.qs[j * k + b * 32..j * k + b * 32 + 32];
                for (p, v) in q.iter().enumerate() {
                    out.data[at + (p / 4) * 32 + r * 4 + p % 4] = *v as u8;
                }
                for h in 0..32 / g {
                    let s = m.scales[(j * k + b * 32) / g + h];
                    put(&mut out.data, at + 256 + (h * ROWS + r) * 4, s);
                }
                if offsets {
                    let mn = m.mins[(j * k) / 32 + b];
                    put(&mut out.data, at + 256 + (32 / g) * ROWS * 4 + r * 4, mn);
                }
            }
        }
        out
    }

    /// Bytes per block of 32 steps of a panel.
    fn block_bytes(&self) -> usize {
        256 + (32 / self.group) * ROWS * 4 + if self.offsets { ROWS * 4 } else { 0 }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The ggml types it was made from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `out[m, n] = x[m, k] · wᵀ` on `x` quantized to 8 bits per block of 32.
    pub fn product_into(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(
            x.len(),
            m * self.k,
            "quant product: x is not [{m}, {}]",
            self.k
        );
        assert_eq!(
            out.len(),
            m * self.n,
            "quant product: out is not [{m}, {}]",
            self.n
        );
        if m == 0 || self.n == 0 {
            return;
        }
        let rows = QuantRows::quantize(x, m, self.k);
        product(Isa::detect(), self, &rows, out);
    }
}

/// Tasks per thread of a parallel product: few and long, so that each thread
/// streams a long contiguous range of the weights (with four panels per task
/// batch-1 decoding ran at two thirds of the rate; Qwen2.5-Coder-0.5B,
/// 2026-12-07), yet enough for the threads to even out.
const TASKS_PER_THREAD: usize = 4;

/// The product over the kernels' thread team, in contiguous ranges of panels.
pub(super) fn product(isa: Isa, w: &QuantPanels, x: &QuantRows, out: &mut [f32]) {
    let (n, k, m) = (w.n, w.k, x.m());
    let panels = n.div_ceil(ROWS);
    let team = crate::kernels::team::Team::global();
    let per_task = panels.div_ceil(team.threads() * TASKS_PER_THREAD).max(8);
    let tasks = panels.div_ceil(per_task);
    let out_ptr = SendPtr(out.as_mut_ptr());
    // The input rows in register blocks, sliced once per product.
    let blocks: Vec<(usize, [RowParts<'_>; BLOCK_ROWS])> = (0..m)
        .step_by(BLOCK_ROWS)
        .map(|r0| {
            let rb = BLOCK_ROWS.min(m - r0);
            (r0, x.parts(r0, rb))
        })
        .collect();
    // Panels in chunks of about 128 KiB: each row block runs over a chunk
    // while the chunk stays in L2 and the row block's codes in L1.
    let panel_bytes = (k / 32) * w.block_bytes();
    let chunk = ((128 << 10) / panel_bytes.max(1)).max(1);
    let run = |t: usize, _next: Option<usize>| {
        let mut sums = [[0f32; ROWS]; BLOCK_ROWS];
        let (first, last) = (t * per_task, ((t + 1) * per_task).min(panels));
        for c0 in (first..last).step_by(chunk) {
            for (r0, xs) in &blocks {
                let rb = BLOCK_ROWS.min(m - r0);
                for pn in c0..(c0 + chunk).min(last) {
                    let rows = (n - pn * ROWS).min(ROWS);
                    panel_block(isa, w, pn, &xs[..rb], &mut sums);
                    for (i, s) in sums.iter().enumerate().take(rb) {
                        for (c, v) in s.iter().enumerate().take(rows) {
                            // SAFETY: task t alone writes the columns of its
                            // panels, and `out` (`m * n` values) outlives the
                            // section.
                            unsafe { *out_ptr.at((r0 + i) * n + pn * ROWS + c) = *v };
                        }
                    }
                }
            }
        }
    };
    if 2 * m * n * k < 1 << 18 {
        (0..tasks).for_each(|t| run(t, None));
    } else {
        team.run_split(tasks, &run);
    }
}

/// Panel `pn` against the input rows `xs` (at most `BLOCK_ROWS`), into
/// `sums[i][c]` (input row `i` of `xs`, weight row `8 pn + c`).
fn panel_block(
    isa: Isa,
    w: &QuantPanels,
    pn: usize,
    xs: &[RowParts<'_>],
    sums: &mut [[f32; ROWS]; BLOCK_ROWS],
) {
    let rb = xs.len();
    let (bb, blocks) = (w.block_bytes(), w.k / 32);
    let panel = &w.data[pn * blocks * bb..(pn + 1) * blocks * bb];
    let (g16, offsets) = (w.group == 16, w.offsets);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx2 => {
            // SAFETY: AVX2 and FMA were detected; `panel` holds `blocks`
            // blocks of `bb` bytes, and the rows their codes, scales and sums.
            unsafe {
                macro_rules! go {
                    ($g:literal, $o:literal) => {
                        match rb {
                            4 => x86::block::<$g, $o, 4>(panel, bb, xs, blocks, sums),
                            3 => x86::block::<$g, $o, 3>(panel, bb, xs, blocks, sums),
                            2 => x86::block::<$g, $o, 2>(panel, bb, xs, blocks, sums),
                            _ => x86::block::<$g, $o, 1>(panel, bb, xs, blocks, sums),
                        }
                    };
                }
                match (g16, offsets) {
                    (false, false) => go!(false, false),
                    (false, true) => go!(false, true),
                    (true, false) => go!(true, false),
                    (true, true) => go!(true, true),
                }
            }
        }
        _ => block_portable(w.group, offsets, panel, bb, xs, blocks, sums),
    }
}

/// The `f32` at byte `at` of `data`.
#[inline(always)]
fn f32_at(data: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

fn block_portable(
    g: usize,
    offsets: bool,
    panel: &[u8],
    bb: usize,
    xs: &[RowParts<'_>],
    blocks: usize,
    sums: &mut [[f32; ROWS]; BLOCK_ROWS],
) {
    let groups = 32 / g;
    for (i, (xq, xd, xsum)) in xs.iter().enumerate() {
        let mut acc = [0f32; ROWS];
        for b in 0..blocks {
            let blk = &panel[b * bb..(b + 1) * bb];
            for h in 0..groups {
                let mut isum = [0i32; ROWS];
                for s in h * g / 4..(h + 1) * g / 4 {
                    for (c, v) in isum.iter_mut().enumerate() {
                        for t in 0..4 {
                            *v += blk[s * 32 + c * 4 + t] as i8 as i32
                                * xq[b * 32 + s * 4 + t] as i32;
                        }
                    }
                }
                for (c, a) in acc.iter_mut().enumerate() {
                    *a += isum[c] as f32 * (f32_at(blk, 256 + (h * ROWS + c) * 4) * xd[b]);
                }
            }
            if offsets {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a += f32_at(blk, 256 + (groups * ROWS + c) * 4) * xsum[b];
                }
            }
        }
        sums[i] = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{RowParts, BLOCK_ROWS, ROWS};
    use std::arch::x86_64::*;

    /// `R` input rows against one panel; `G16`: a scale per 16 steps; `O`:
    /// offsets after the scales.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `panel` holds `blocks` blocks of `bb`
    /// bytes laid out as the module docs say, and each of `xs`' first `R` rows
    /// `32 * blocks` codes and `blocks` scales and sums.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)] // `r` indexes the rows' accumulators and inputs alike
    pub unsafe fn block<const G16: bool, const O: bool, const R: usize>(
        panel: &[u8],
        bb: usize,
        xs: &[RowParts<'_>],
        blocks: usize,
        sums: &mut [[f32; ROWS]; BLOCK_ROWS],
    ) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        let groups = if G16 { 2 } else { 1 };
        let steps = 8 / groups;
        for b in 0..blocks {
            let blk = panel.as_ptr().add(b * bb);
            for h in 0..groups {
                let mut isum = [_mm256_setzero_si256(); R];
                for s in 0..steps {
                    let at = h * steps + s;
                    let w = _mm256_loadu_si256(blk.add(at * 32).cast());
                    let aw = _mm256_sign_epi8(w, w);
                    for r in 0..R {
                        let xv = _mm256_set1_epi32(
                            (xs.get_unchecked(r).0.as_ptr().add(b * 32 + at * 4) as *const i32)
                                .read_unaligned(),
                        );
                        let sx = _mm256_sign_epi8(xv, w);
                        isum[r] = _mm256_add_epi32(
                            isum[r],
                            _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones),
                        );
                    }
                }
                let sc = _mm256_loadu_ps(blk.add(256 + h * ROWS * 4).cast());
                for r in 0..R {
                    let dx = _mm256_set1_ps(*xs.get_unchecked(r).1.get_unchecked(b));
                    acc[r] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_mul_ps(sc, dx), acc[r]);
                }
            }
            if O {
                let mv = _mm256_loadu_ps(blk.add(256 + groups * ROWS * 4).cast());
                for r in 0..R {
                    let sv = _mm256_set1_ps(*xs.get_unchecked(r).2.get_unchecked(b));
                    acc[r] = _mm256_fmadd_ps(mv, sv, acc[r]);
                }
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(sums[r].as_mut_ptr(), acc[r]);
        }
    }
}

/// [`product`] with the instruction set given, for tests.
#[cfg(test)]
pub(super) fn product_with(isa: Isa, w: &QuantPanels, x: &[f32], m: usize) -> Vec<f32> {
    let rows = QuantRows::quantize(x, m, w.k);
    let mut out = vec![0f32; m * w.n];
    product(isa, w, &rows, &mut out);
    out
}
