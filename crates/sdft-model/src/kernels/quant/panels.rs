//! [`QuantPanels`]: a [`QuantMatrix`]'s codes interleaved for the product, eight
//! weight rows at a time, and the product on 8-bit input rows.
//!
//! Panel `P` holds rows `8P..8P + 8` (zero rows past the last), block by block
//! of 32 steps, in one byte stream: the block's codes ([`Codes`]), then its
//! eight rows' scales (sixteen for 16-step groups) and, for types with offsets,
//! their eight offsets, as `f32`. As bytes ([`Codes::Bytes`]: 8-bit and 6-bit
//! codes), for every four steps `p..p + 4` the eight rows' four codes side by
//! side (32 bytes, one AVX2 vector; 256 per block). Codes of at most 5 bits in
//! 32-step groups (Q4_0, Q4_1, Q4_K, Q5_0, Q5_K) are kept as unsigned nibbles
//! instead ([`Codes::Nib4`], [`Codes::Nib5`]: the four-step groups `s` and `s +
//! 4` in the low and high halves of the same 32 bytes, plus a plane of fifth
//! bits), signed codes shifted up by a constant that the kernel takes back
//! (`d·(u − 16)·x = d·u·x − 16·d·x`, from the block's scale and the input
//! block's sum; folded into the stored offsets of types that have them): 128 or
//! 160 bytes per block instead of 256. A thread's range of
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

/// How a panel block stores its 256 codes (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Codes {
    /// Signed bytes: 256 bytes.
    Bytes,
    /// Unsigned 4-bit codes: four-step group `s` (0..4) in the low nibbles of
    /// the block's `s`-th 32 bytes, group `s + 4` in their high nibbles: 128
    /// bytes.
    Nib4,
    /// [`Codes::Nib4`]'s 128 bytes of low four bits, then 32 bytes of fifth
    /// bits: bit `s` of byte `j` for byte `j` of four-step group `s`'s 32 (so
    /// that one 16-bit shift brings a group's bits into place): 160 bytes.
    Nib5,
}

impl Codes {
    /// Bytes of a block's codes.
    pub(super) fn bytes(self) -> usize {
        match self {
            Codes::Bytes => 256,
            Codes::Nib4 => 128,
            Codes::Nib5 => 160,
        }
    }

    /// The storage for codes `lo..=hi` in groups of `group` steps, and the
    /// shift that makes them unsigned (0 for bytes).
    fn choose(lo: i32, hi: i32, group: usize) -> (Codes, i32) {
        let shift = (-lo).max(0);
        match (group == 32, hi + shift) {
            (true, 0..=15) => (Codes::Nib4, shift),
            (true, 16..=31) => (Codes::Nib5, shift),
            _ => (Codes::Bytes, 0),
        }
    }
}

/// A `[n, k]` quantized weight in panels of [`ROWS`] rows (see the module
/// docs).
#[derive(Clone)]
pub struct QuantPanels {
    n: usize,
    k: usize,
    group: usize,
    /// Offsets stored after the scales.
    offsets: bool,
    codes: Codes,
    /// What the kernel subtracts from every code (nibble codes of signed
    /// types without stored offsets).
    shift: i32,
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
        let (lo, hi) = m.qs.iter().fold((0i32, 0i32), |(a, b), &q| {
            (a.min(q as i32), b.max(q as i32))
        });
        let (codes, shift) = Codes::choose(lo, hi, g);
        let offsets = !m.mins.is_empty();
        let mut out = QuantPanels {
            n,
            k,
            group: g,
            offsets,
            codes,
            shift: if offsets { 0 } else { shift },
            data: Vec::new(),
            source: m.source.clone(),
        };
        let (bb, cb) = (out.block_bytes(), codes.bytes());
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
                    let (s, t) = (p / 4, p % 4);
                    if codes == Codes::Bytes {
                        out.data[at + s * 32 + r * 4 + t] = *v as u8;
                        continue;
                    }
                    let u = (*v as i32 + shift) as u8;
                    out.data[at + (s % 4) * 32 + r * 4 + t] |=
                        (u & 15) << if s < 4 { 0 } else { 4 };
                    if u & 16 != 0 {
                        out.data[at + 128 + r * 4 + t] |= 1 << s;
                    }
                }
                for h in 0..32 / g {
                    let s = m.scales[(j * k + b * 32) / g + h];
                    put(&mut out.data, at + cb + (h * ROWS + r) * 4, s);
                }
                if offsets {
                    // With a shift, the group is the block (32 steps).
                    let (min, scale) = (m.mins[(j * k) / 32 + b], m.scales[(j * k + b * 32) / g]);
                    let at = at + cb + (32 / g) * ROWS * 4 + r * 4;
                    put(&mut out.data, at, min - shift as f32 * scale);
                }
            }
        }
        out
    }

    /// Bytes per block of 32 steps of a panel.
    fn block_bytes(&self) -> usize {
        self.codes.bytes() + (32 / self.group) * ROWS * 4 + if self.offsets { ROWS * 4 } else { 0 }
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

    /// Row `j`'s values in `f32` (`k` of them into `out`): what the product
    /// multiplies by, `scale · (code − shift) + offset`, for lookups (a tied
    /// embedding read from its output head).
    pub fn dequantize_row(&self, j: usize, out: &mut [f32]) {
        let (bb, cb, g) = (self.block_bytes(), self.codes.bytes(), self.group);
        let blocks = self.k / 32;
        let (pn, r) = (j / ROWS, j % ROWS);
        for b in 0..blocks {
            let at = (pn * blocks + b) * bb;
            let blk = &self.data[at..at + bb];
            let offset = match self.offsets {
                true => f32_at(blk, cb + (32 / g) * ROWS * 4 + r * 4),
                false => 0.0,
            };
            for (p, o) in out[b * 32..(b + 1) * 32].iter_mut().enumerate() {
                let scale = f32_at(blk, cb + ((p / g) * ROWS + r) * 4);
                let code = code_at(self.codes, blk, p, r) - self.shift;
                *o = scale * code as f32 + offset;
            }
        }
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
                let shift = w.shift as f32;
                macro_rules! nib {
                    ($five:literal, $o:literal) => {
                        match rb {
                            4 => x86::block_nib::<$five, $o, 4>(panel, bb, xs, blocks, shift, sums),
                            3 => x86::block_nib::<$five, $o, 3>(panel, bb, xs, blocks, shift, sums),
                            2 => x86::block_nib::<$five, $o, 2>(panel, bb, xs, blocks, shift, sums),
                            _ => x86::block_nib::<$five, $o, 1>(panel, bb, xs, blocks, shift, sums),
                        }
                    };
                }
                // `O`: 0 no offsets, 1 stored offsets, 2 the shift's.
                let o = match (offsets, w.shift) {
                    (true, _) => 1,
                    (false, 0) => 0,
                    (false, _) => 2,
                };
                match (w.codes, g16, o) {
                    (Codes::Nib4, _, 0) => nib!(false, 0),
                    (Codes::Nib4, _, 1) => nib!(false, 1),
                    (Codes::Nib4, _, _) => nib!(false, 2),
                    (Codes::Nib5, _, 0) => nib!(true, 0),
                    (Codes::Nib5, _, 1) => nib!(true, 1),
                    (Codes::Nib5, _, _) => nib!(true, 2),
                    (Codes::Bytes, false, 0) => go!(false, false),
                    (Codes::Bytes, false, _) => go!(false, true),
                    (Codes::Bytes, true, 0) => go!(true, false),
                    (Codes::Bytes, true, _) => go!(true, true),
                }
            }
        }
        _ => block_portable(w, panel, xs, sums),
    }
}

/// The `f32` at byte `at` of `data`.
#[inline(always)]
fn f32_at(data: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// The code of weight row `c` at step `p` of a block's codes `blk`.
#[inline(always)]
fn code_at(codes: Codes, blk: &[u8], p: usize, c: usize) -> i32 {
    let (s, t) = (p / 4, p % 4);
    if codes == Codes::Bytes {
        return blk[s * 32 + c * 4 + t] as i8 as i32;
    }
    let byte = blk[(s % 4) * 32 + c * 4 + t];
    let low = if s < 4 { byte & 15 } else { byte >> 4 } as i32;
    let fifth = match codes {
        Codes::Nib5 => ((blk[128 + c * 4 + t] >> s) & 1) as i32,
        _ => 0,
    };
    low | (fifth << 4)
}

fn block_portable(
    w: &QuantPanels,
    panel: &[u8],
    xs: &[RowParts<'_>],
    sums: &mut [[f32; ROWS]; BLOCK_ROWS],
) {
    let (g, bb, cb) = (w.group, w.block_bytes(), w.codes.bytes());
    let groups = 32 / g;
    for (i, (xq, xd, xsum)) in xs.iter().enumerate() {
        let mut acc = [0f32; ROWS];
        for b in 0..w.k / 32 {
            let blk = &panel[b * bb..(b + 1) * bb];
            for h in 0..groups {
                let mut isum = [0i32; ROWS];
                for p in h * g..(h + 1) * g {
                    for (c, v) in isum.iter_mut().enumerate() {
                        *v += code_at(w.codes, blk, p, c) * xq[b * 32 + p] as i32;
                    }
                }
                for (c, a) in acc.iter_mut().enumerate() {
                    let sc = f32_at(blk, cb + (h * ROWS + c) * 4);
                    *a += isum[c] as f32 * (sc * xd[b]);
                    if w.shift != 0 {
                        *a += sc * -(w.shift as f32) * xsum[b];
                    }
                }
            }
            if w.offsets {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a += f32_at(blk, cb + (groups * ROWS + c) * 4) * xsum[b];
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

    /// [`block`] on unsigned nibble codes (32-step groups); `FIVE`: with the
    /// plane of fifth bits ([`super::Codes::Nib5`]); `O`: 0 no offsets, 1 the
    /// stored offsets, 2 `shift` subtracted from every code.
    ///
    /// # Safety
    /// As for [`block`], with the blocks laid out as [`super::Codes::Nib4`] or
    /// [`super::Codes::Nib5`] says.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)] // `r` indexes the rows' accumulators and inputs alike
    pub unsafe fn block_nib<const FIVE: bool, const O: u8, const R: usize>(
        panel: &[u8],
        bb: usize,
        xs: &[RowParts<'_>],
        blocks: usize,
        shift: f32,
        sums: &mut [[f32; ROWS]; BLOCK_ROWS],
    ) {
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(0x0F);
        let sixteen = _mm256_set1_epi8(0x10);
        let minus_shift = _mm256_set1_ps(-shift);
        let cb = if FIVE { 160 } else { 128 };
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..blocks {
            let blk = panel.as_ptr().add(b * bb);
            let fifth = if FIVE {
                _mm256_loadu_si256(blk.add(128).cast())
            } else {
                _mm256_setzero_si256()
            };
            let mut isum = [_mm256_setzero_si256(); R];
            for s in 0..4 {
                let v = _mm256_loadu_si256(blk.add(s * 32).cast());
                let mut lo = _mm256_and_si256(v, low);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                if FIVE {
                    // Bit s (group s) and bit s + 4 (group s + 4) to bit 4;
                    // no bit crosses a byte's bit 4 from its neighbour.
                    let up = _mm256_sll_epi16(fifth, _mm_cvtsi32_si128(4 - s as i32));
                    let down = _mm256_srl_epi16(fifth, _mm_cvtsi32_si128(s as i32));
                    lo = _mm256_or_si256(lo, _mm256_and_si256(up, sixteen));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(down, sixteen));
                }
                for r in 0..R {
                    let xp = xs.get_unchecked(r).0.as_ptr().add(b * 32);
                    let x0 = _mm256_set1_epi32((xp.add(s * 4) as *const i32).read_unaligned());
                    let x1 = _mm256_set1_epi32((xp.add(16 + s * 4) as *const i32).read_unaligned());
                    // Codes below 32 against |x| <= 127: each 16-bit sum at
                    // most 4 * 31 * 127, no saturation.
                    let p = _mm256_add_epi16(
                        _mm256_maddubs_epi16(lo, x0),
                        _mm256_maddubs_epi16(hi, x1),
                    );
                    isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(p, ones));
                }
            }
            let sc = _mm256_loadu_ps(blk.add(cb).cast());
            let off = match O {
                1 => _mm256_loadu_ps(blk.add(cb + ROWS * 4).cast()),
                2 => _mm256_mul_ps(sc, minus_shift),
                _ => _mm256_setzero_ps(),
            };
            for r in 0..R {
                let dx = _mm256_set1_ps(*xs.get_unchecked(r).1.get_unchecked(b));
                acc[r] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_mul_ps(sc, dx), acc[r]);
                if O != 0 {
                    let sv = _mm256_set1_ps(*xs.get_unchecked(r).2.get_unchecked(b));
                    acc[r] = _mm256_fmadd_ps(off, sv, acc[r]);
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
