//! [`QuantPanels`]: a [`QuantMatrix`]'s codes interleaved for the product, eight
//! weight rows at a time, and the product on 8-bit input rows.
//!
//! Panel `P` holds rows `8P..8P + 8` (zero rows past the last): for every four
//! steps `p..p + 4`, the eight rows' four codes side by side (32 bytes, one AVX2
//! vector), then each group's eight scales and each block's eight offsets. The
//! kernel broadcasts an input row's four codes at those steps to all eight rows,
//! multiplies byte by byte (`maddubs`: |w| as unsigned bytes against x with w's
//! sign, two products per 16-bit lane, then `madd` to 32 bits: eight rows' sums
//! of four products per two instructions), sums in 32-bit integers over a group,
//! and scales the eight rows' sums by their scales and the row's block scale in
//! one multiply-add. Every weight vector loaded serves up to four input rows, and
//! there is no horizontal sum. Each output's chain of operations is the same
//! whatever rows share its call, so results do not depend on the batch.

use super::rows::QuantRows;
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
    /// Per panel `k * ROWS` codes.
    codes: Vec<i8>,
    /// Per panel `k / group * ROWS` scales.
    scales: Vec<f32>,
    /// Per panel `k / 32 * ROWS` offsets, or empty.
    mins: Vec<f32>,
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
        let panels = n.div_ceil(ROWS);
        let mut codes = vec![0i8; panels * k * ROWS];
        let mut scales = vec![0f32; panels * k / g * ROWS];
        let mut mins = vec![
            0f32;
            if m.mins.is_empty() {
                0
            } else {
                panels * k / 32 * ROWS
            }
        ];
        for j in 0..n {
            let (pn, r) = (j / ROWS, j % ROWS);
            let base = pn * k * ROWS;
            for (p, q) in m.qs[j * k..(j + 1) * k].iter().enumerate() {
                codes[base + (p / 4) * 32 + r * 4 + p % 4] = *q;
            }
            for (gi, s) in m.scales[j * k / g..(j + 1) * k / g].iter().enumerate() {
                scales[pn * k / g * ROWS + gi * ROWS + r] = *s;
            }
            if !mins.is_empty() {
                for (bi, v) in m.mins[j * k / 32..(j + 1) * k / 32].iter().enumerate() {
                    mins[pn * k / 32 * ROWS + bi * ROWS + r] = *v;
                }
            }
        }
        QuantPanels {
            n,
            k,
            group: g,
            codes,
            scales,
            mins,
            source: m.source.clone(),
        }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.codes.len() + 4 * (self.scales.len() + self.mins.len())
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
    let run = |t: usize, _next: Option<usize>| {
        let mut sums = [[0f32; ROWS]; BLOCK_ROWS];
        let first = t * per_task;
        let last = ((t + 1) * per_task).min(panels);
        for r0 in (0..m).step_by(BLOCK_ROWS) {
            let rb = BLOCK_ROWS.min(m - r0);
            let xs = x.parts(r0, rb);
            for pn in first..last {
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
    let (k, g) = (w.k, w.group);
    let codes = &w.codes[pn * k * ROWS..(pn + 1) * k * ROWS];
    let scales = &w.scales[pn * k / g * ROWS..(pn + 1) * k / g * ROWS];
    let mins = (!w.mins.is_empty()).then(|| &w.mins[pn * k / 32 * ROWS..(pn + 1) * k / 32 * ROWS]);
    let blocks = k / 32;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx2 => {
            // SAFETY: AVX2 and FMA were detected; the slices hold the panel's
            // `blocks` blocks and the rows' codes, scales and sums.
            unsafe {
                match (g == 16, rb) {
                    (false, 4) => x86::block::<false, 4>(codes, scales, mins, xs, blocks, sums),
                    (false, 3) => x86::block::<false, 3>(codes, scales, mins, xs, blocks, sums),
                    (false, 2) => x86::block::<false, 2>(codes, scales, mins, xs, blocks, sums),
                    (false, _) => x86::block::<false, 1>(codes, scales, mins, xs, blocks, sums),
                    (true, 4) => x86::block::<true, 4>(codes, scales, mins, xs, blocks, sums),
                    (true, 3) => x86::block::<true, 3>(codes, scales, mins, xs, blocks, sums),
                    (true, 2) => x86::block::<true, 2>(codes, scales, mins, xs, blocks, sums),
                    (true, _) => x86::block::<true, 1>(codes, scales, mins, xs, blocks, sums),
                }
            }
        }
        _ => block_portable(g, codes, scales, mins, xs, blocks, sums),
    }
}

/// One input row's parts: codes, block scales, block sums.
pub(super) type RowParts<'a> = (&'a [i8], &'a [f32], &'a [f32]);

fn block_portable(
    g: usize,
    codes: &[i8],
    scales: &[f32],
    mins: Option<&[f32]>,
    xs: &[RowParts<'_>],
    blocks: usize,
    sums: &mut [[f32; ROWS]; BLOCK_ROWS],
) {
    let per_block = 32 / g;
    for (i, (xq, xd, xsum)) in xs.iter().enumerate() {
        let mut acc = [0f32; ROWS];
        for b in 0..blocks {
            for h in 0..per_block {
                let mut isum = [0i32; ROWS];
                for s in (b * 32 + h * g) / 4..(b * 32 + (h + 1) * g) / 4 {
                    for (c, v) in isum.iter_mut().enumerate() {
                        for t in 0..4 {
                            *v += codes[s * 32 + c * 4 + t] as i32 * xq[s * 4 + t] as i32;
                        }
                    }
                }
                let gi = b * per_block + h;
                for c in 0..ROWS {
                    acc[c] += isum[c] as f32 * (scales[gi * ROWS + c] * xd[b]);
                }
            }
            if let Some(m) = mins {
                for c in 0..ROWS {
                    acc[c] += m[b * ROWS + c] * xsum[b];
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

    /// `R` input rows against one panel, `G16`: a scale per 16 steps.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `codes` holds `32 * blocks` steps of the
    /// panel, `scales` its group scales, `mins` (if any) its block offsets, and
    /// each of `xs`' first `R` rows `32 * blocks` codes and `blocks` scales and
    /// sums.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn block<const G16: bool, const R: usize>(
        codes: &[i8],
        scales: &[f32],
        mins: Option<&[f32]>,
        xs: &[RowParts<'_>],
        blocks: usize,
        sums: &mut [[f32; ROWS]; BLOCK_ROWS],
    ) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        let wp = codes.as_ptr();
        let groups = if G16 { 2 } else { 1 };
        let steps = 8 / groups;
        for b in 0..blocks {
            for h in 0..groups {
                let mut isum = [_mm256_setzero_si256(); R];
                for s in 0..steps {
                    let at = b * 8 + h * steps + s;
                    let w = _mm256_loadu_si256(wp.add(at * 32).cast());
                    let aw = _mm256_sign_epi8(w, w);
                    for r in 0..R {
                        let xv = _mm256_set1_epi32(
                            (xs.get_unchecked(r).0.as_ptr().add(at * 4) as *const i32)
                                .read_unaligned(),
                        );
                        let sx = _mm256_sign_epi8(xv, w);
                        isum[r] = _mm256_add_epi32(
                            isum[r],
                            _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones),
                        );
                    }
                }
                let sc = _mm256_loadu_ps(scales.as_ptr().add((b * groups + h) * ROWS));
                for r in 0..R {
                    let dx = _mm256_set1_ps(*xs.get_unchecked(r).1.get_unchecked(b));
                    acc[r] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_mul_ps(sc, dx), acc[r]);
                }
            }
            if let Some(m) = mins {
                let mv = _mm256_loadu_ps(m.as_ptr().add(b * ROWS));
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
