//! The per-row operations of a training step, forward and backward, spread
//! over the kernels' thread team in chunks of [`ROW_CHUNK`] rows: RMSNorm,
//! RoPE's backward, SwiGLU's backward, the head's softmax, and LoRA's two thin
//! products with their dropout masks drawn row by row.
//!
//! The chunks are fixed, not one per thread, and a chunk's partial sums (LoRA's
//! weight gradients) are added in chunk order, so a step's result does not
//! depend on the number of threads.

// Loops index explicitly so that they vectorize inside the multiversioned bodies.
#![allow(clippy::needless_range_loop)]
#![allow(clippy::too_many_arguments)]

use super::super::numeric::{axpy, dot, exp, max_of};
use super::super::team::Team;
use super::super::SendPtr;
use sdft_core::rng::SplitMix64;

/// Rows per task.
pub(super) const ROW_CHUNK: usize = 32;

/// Calls `f(first row, end)` for every chunk of [`ROW_CHUNK`] rows of
/// `0..rows`, spread over the team.
pub(super) fn par_rows(rows: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    let chunks = rows.div_ceil(ROW_CHUNK);
    Team::global().run(chunks, &|c| {
        f(c * ROW_CHUNK, ((c + 1) * ROW_CHUNK).min(rows))
    });
}

/// Rows `r0..r1` of the row-major buffer of rows of `width` at `p`.
///
/// # Safety
/// The rows must lie inside the buffer, which must outlive the returned slice,
/// and no other task may touch them meanwhile.
pub(super) unsafe fn rows_mut<'a>(p: SendPtr, width: usize, r0: usize, r1: usize) -> &'a mut [f32] {
    std::slice::from_raw_parts_mut(p.at(r0 * width), (r1 - r0) * width)
}

/// Inverse RMS of each row of `x` and `out = x · r · w`.
pub(super) fn rms_forward(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) -> Vec<f32> {
    let d = w.len();
    let rows = x.len() / d;
    let mut r = vec![0f32; rows];
    let (op, rp) = (SendPtr(out.as_mut_ptr()), SendPtr(r.as_mut_ptr()));
    par_rows(rows, &|r0, r1| {
        // SAFETY: this chunk alone writes rows r0..r1 of `out` and `r`, which
        // outlive the section.
        let (o, rr) = unsafe { (rows_mut(op, d, r0, r1), rows_mut(rp, 1, r0, r1)) };
        rms_forward_rows(&x[r0 * d..r1 * d], w, eps, o, rr);
    });
    r
}

multiversion! {
    fn rms_forward_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], r: &mut [f32]) -> () {
        let d = w.len();
        for ((o, row), s) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(r.iter_mut()) {
            let scale = 1.0 / (dot(row, row) / d as f32 + eps).sqrt();
            for i in 0..d {
                o[i] = row[i] * scale * w[i];
            }
            *s = scale;
        }
    }
}

/// `dx += r·(g ⊙ w) − x·r³·mean(g ⊙ w ⊙ x)` per row: the gradient through
/// `y = x · r · w` (`r` the inverse RMS) for the output gradient `g`.
pub(super) fn rms_backward(x: &[f32], r: &[f32], w: &[f32], g: &[f32], dx: &mut [f32]) {
    let d = w.len();
    let dp = SendPtr(dx.as_mut_ptr());
    par_rows(r.len(), &|r0, r1| {
        // SAFETY: this chunk alone writes rows r0..r1 of `dx`.
        let out = unsafe { rows_mut(dp, d, r0, r1) };
        let span = r0 * d..r1 * d;
        rms_backward_rows(&x[span.clone()], &r[r0..r1], w, &g[span], out);
    });
}

multiversion! {
    fn rms_backward_rows(x: &[f32], r: &[f32], w: &[f32], g: &[f32], dx: &mut [f32]) -> () {
        let d = w.len();
        let mut gw = vec![0f32; d];
        for (((row, gr), out), &s) in x
            .chunks_exact(d)
            .zip(g.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
            .zip(r)
        {
            for i in 0..d {
                gw[i] = gr[i] * w[i];
            }
            let mean = dot(&gw, row) / d as f32;
            let c = s * s * s * mean;
            for i in 0..d {
                out[i] += s * gw[i] - row[i] * c;
            }
        }
    }
}

/// Applies `f` (RoPE or its backward) to the first `cols` columns of every row
/// of `x` (rows of `width`), row `i` at position `positions[i]` of the tables
/// `cos` and `sin` (`[positions, head_dim]`).
pub(super) fn rotate_rows(
    x: &mut [f32],
    width: usize,
    cols: usize,
    positions: &[usize],
    cos: &[f32],
    sin: &[f32],
    hd: usize,
    f: fn(&mut [f32], &[f32], &[f32]),
) {
    let xp = SendPtr(x.as_mut_ptr());
    par_rows(positions.len(), &|r0, r1| {
        // SAFETY: this chunk alone writes rows r0..r1 of `x`.
        let rows = unsafe { rows_mut(xp, width, r0, r1) };
        for (row, &pos) in rows.chunks_exact_mut(width).zip(&positions[r0..r1]) {
            let span = pos * hd..(pos + 1) * hd;
            f(&mut row[..cols], &cos[span.clone()], &sin[span]);
        }
    });
}

/// The backward of rotate-half RoPE, in place on every head of one row: the
/// rotation by the opposite angle.
pub(super) fn rope_backward(g: &mut [f32], cos: &[f32], sin: &[f32]) {
    let d = cos.len();
    let half = d / 2;
    for head in g.chunks_exact_mut(d) {
        for i in 0..half {
            let (a, b) = (head[i], head[i + half]);
            head[i] = a * cos[i] + b * sin[i + half];
            head[i + half] = b * cos[i + half] - a * sin[i];
        }
    }
}

/// The gradients of `[gate | up]` rows for `act = silu(gate) · up` and its
/// gradient `d_act`.
pub(super) fn swiglu_backward(gu: &[f32], d_act: &[f32], h: usize, dgu: &mut [f32]) {
    let dp = SendPtr(dgu.as_mut_ptr());
    par_rows(d_act.len() / h, &|r0, r1| {
        // SAFETY: this chunk alone writes rows r0..r1 of `dgu`.
        let out = unsafe { rows_mut(dp, 2 * h, r0, r1) };
        swiglu_backward_rows(&gu[r0 * 2 * h..r1 * 2 * h], &d_act[r0 * h..r1 * h], h, out);
    });
}

multiversion! {
    fn swiglu_backward_rows(gu: &[f32], d_act: &[f32], h: usize, dgu: &mut [f32]) -> () {
        for ((row, da), out) in gu
            .chunks_exact(2 * h)
            .zip(d_act.chunks_exact(h))
            .zip(dgu.chunks_exact_mut(2 * h))
        {
            let (g, u) = row.split_at(h);
            let (dg, du) = out.split_at_mut(h);
            for i in 0..h {
                let sg = 1.0 / (1.0 + exp(-g[i]));
                let silu = g[i] * sg;
                du[i] = da[i] * silu;
                dg[i] = da[i] * u[i] * sg * (1.0 + g[i] * (1.0 - sg));
            }
        }
    }
}

/// For every row of `z` (`[rows, vocab]` logits) and its target: the row's NLL
/// `logsumexp − z[target]`, and in place of the row `scale ·` the gradient of
/// the NLL (`softmax − one-hot`). Returns the NLLs summed in row order.
pub(super) fn softmax_nll_rows(z: &mut [f32], vocab: usize, targets: &[u32], scale: f32) -> f64 {
    let rows = targets.len();
    let mut nll = vec![0f64; rows];
    let (zp, np) = (SendPtr(z.as_mut_ptr()), nll.as_mut_ptr() as usize);
    Team::global().run(rows, &|j| {
        // SAFETY: task j alone touches row j of `z` and entry j of `nll`.
        let zr = unsafe { rows_mut(zp, vocab, j, j + 1) };
        let t = targets[j] as usize;
        let picked = zr[t];
        let lse = softmax_scaled(zr, scale);
        zr[t] -= scale;
        unsafe { *(np as *mut f64).add(j) = (lse - picked) as f64 };
    });
    nll.iter().sum()
}

/// For every row of `z` (`[rows, vocab]` student logits) and the teacher's
/// log-probabilities `teacher` (`[rows, vocab]`): the row's distillation loss,
/// and in place of the row `scale ·` its gradient
/// ([`super::divergence::position_loss`]). Returns the losses summed in row
/// order.
pub(super) fn distill_rows(
    z: &mut [f32],
    vocab: usize,
    teacher: &[f32],
    loss: &super::divergence::DistillLoss,
    scale: f32,
) -> f64 {
    let rows = z.len() / vocab;
    let mut out = vec![0f64; rows];
    let (zp, op) = (SendPtr(z.as_mut_ptr()), out.as_mut_ptr() as usize);
    Team::global().run(rows, &|j| {
        // SAFETY: task j alone touches row j of `z` and entry j of `out`.
        let zr = unsafe { rows_mut(zp, vocab, j, j + 1) };
        let t = &teacher[j * vocab..(j + 1) * vocab];
        let v = super::divergence::position_loss(zr, t, loss, scale);
        unsafe { *(op as *mut f64).add(j) = v };
    });
    out.iter().sum()
}

multiversion! {
    /// `z ← softmax(z) · scale` in place; returns `logsumexp(z)`.
    fn softmax_scaled(z: &mut [f32], scale: f32) -> f32 {
        let m = max_of(z);
        let mut s = 0f32;
        for v in z.iter_mut() {
            *v = exp(*v - m);
            s += *v;
        }
        let c = scale / s;
        for v in z.iter_mut() {
            *v *= c;
        }
        m + s.ln()
    }
}

/// An adapter's dropout for one step: its mask, drawn one row at a time.
///
/// The masks are the generic path's ([`crate::model::lora::dropout_mask`] over
/// the padded `[batch, max_len, d_in]` layout from the adapter's key): row `i`
/// of the unpadded batch is row `padded[i]` of that layout, whose values are
/// draws `padded[i] · d_in ..` of the key's stream, reached by skipping ahead.
#[derive(Clone, Copy)]
pub(super) struct Dropout<'a> {
    /// The stream's key; 0: no dropout.
    pub key: u64,
    pub p: f64,
    /// Each row's index in the padded layout.
    pub padded: &'a [usize],
}

impl Dropout<'_> {
    /// Row `i`'s multipliers (0 or `1 / (1 − p)`) into `out`; `false` (and `out`
    /// untouched) without dropout.
    fn row(&self, i: usize, out: &mut [f32]) -> bool {
        if self.key == 0 {
            return false;
        }
        let keep = (1.0 / (1.0 - self.p)) as f32;
        let mut rng = SplitMix64::new(self.key);
        rng.advance((self.padded[i] * out.len()) as u64);
        for m in out.iter_mut() {
            *m = if rng.next_f64() < self.p { 0.0 } else { keep };
        }
        true
    }
}

/// An adapter's shapes and parameters for the thin products: `A` transposed
/// (`[r, d_in]`), `B` (`[r, d_out]`), and its scale.
#[derive(Clone, Copy)]
pub(super) struct Thin<'a> {
    pub at: &'a [f32],
    pub b: &'a [f32],
    pub r: usize,
    pub d_in: usize,
    pub d_out: usize,
    pub scale: f32,
}

/// `out[:, col..col + d_out] += scale · (x ⊙ mask)·A·B` for `out` rows of
/// `stride`; returns `u = (x ⊙ mask)·A` `[t, r]`.
pub(super) fn lora_forward(
    lo: Thin<'_>,
    drop: Dropout<'_>,
    x: &[f32],
    out: &mut [f32],
    stride: usize,
    col: usize,
) -> Vec<f32> {
    let t = x.len() / lo.d_in;
    let mut u = vec![0f32; t * lo.r];
    let (up, op) = (SendPtr(u.as_mut_ptr()), SendPtr(out.as_mut_ptr()));
    par_rows(t, &|r0, r1| {
        // SAFETY: this chunk alone writes rows r0..r1 of `u` and `out`.
        let (uc, oc) = unsafe { (rows_mut(up, lo.r, r0, r1), rows_mut(op, stride, r0, r1)) };
        let mut xd = vec![0f32; lo.d_in];
        for (j, i) in (r0..r1).enumerate() {
            let row = &x[i * lo.d_in..(i + 1) * lo.d_in];
            let xr = if drop.row(i, &mut xd) {
                xd.iter_mut().zip(row).for_each(|(m, x)| *m *= x);
                &xd[..]
            } else {
                row
            };
            lora_forward_row(
                lo,
                xr,
                &mut uc[j * lo.r..(j + 1) * lo.r],
                &mut oc[j * stride + col..j * stride + col + lo.d_out],
            );
        }
    });
    u
}

multiversion! {
    fn lora_forward_row(lo: Thin<'_>, x: &[f32], u: &mut [f32], out: &mut [f32]) -> () {
        for c in 0..lo.r {
            let uc = dot(x, &lo.at[c * lo.d_in..(c + 1) * lo.d_in]);
            u[c] = uc;
            axpy(out, lo.scale * uc, &lo.b[c * lo.d_out..(c + 1) * lo.d_out]);
        }
    }
}

/// The backward of [`lora_forward`] for the output gradient `dy` (`[t,
/// stride]`, columns `col..col + d_out`): adds the gradients of `A` (transposed,
/// `[r, d_in]`) to `ga_t` and of `B` to `gb`, and the input gradient to `dx`.
pub(super) fn lora_backward(
    lo: Thin<'_>,
    drop: Dropout<'_>,
    x: &[f32],
    u: &[f32],
    dy: &[f32],
    stride: usize,
    col: usize,
    ga_t: &mut [f32],
    gb: &mut [f32],
    dx: &mut [f32],
) {
    let (r, d_in, d_out) = (lo.r, lo.d_in, lo.d_out);
    let t = x.len() / d_in;
    let chunks = t.div_ceil(ROW_CHUNK);
    let per = r * (d_in + d_out);
    let mut partial = vec![0f32; chunks * per];
    let (pp, dp) = (SendPtr(partial.as_mut_ptr()), SendPtr(dx.as_mut_ptr()));
    par_rows(t, &|r0, r1| {
        // SAFETY: this chunk alone writes its partial sums and rows r0..r1 of `dx`.
        let (part, dxc) = unsafe {
            (
                rows_mut(pp, per, r0 / ROW_CHUNK, r0 / ROW_CHUNK + 1),
                rows_mut(dp, d_in, r0, r1),
            )
        };
        let (pa, pb) = part.split_at_mut(r * d_in);
        let mut xd = vec![0f32; d_in];
        let mut mask = vec![0f32; d_in];
        let mut du = vec![0f32; r];
        let mut scratch = vec![0f32; d_in];
        for (j, i) in (r0..r1).enumerate() {
            let row = &x[i * d_in..(i + 1) * d_in];
            let masked = drop.row(i, &mut mask);
            let xr = if masked {
                xd.iter_mut()
                    .zip(row)
                    .zip(&mask)
                    .for_each(|((o, x), m)| *o = x * m);
                &xd[..]
            } else {
                row
            };
            lora_backward_row(
                lo,
                xr,
                if masked { &mask[..] } else { &[] },
                &u[i * r..(i + 1) * r],
                &dy[i * stride + col..i * stride + col + d_out],
                &mut du,
                &mut scratch,
                pa,
                pb,
                &mut dxc[j * d_in..(j + 1) * d_in],
            );
        }
    });
    for part in partial.chunks_exact(per) {
        let (pa, pb) = part.split_at(r * d_in);
        ga_t.iter_mut().zip(pa).for_each(|(a, b)| *a += b);
        gb.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
}

multiversion! {
    /// One row of [`lora_backward`]: `x` the row after its mask, `mask` empty
    /// without dropout.
    fn lora_backward_row(
        lo: Thin<'_>,
        x: &[f32],
        mask: &[f32],
        u: &[f32],
        g: &[f32],
        du: &mut [f32],
        scratch: &mut [f32],
        ga_t: &mut [f32],
        gb: &mut [f32],
        dx: &mut [f32],
    ) -> () {
        let (d_in, d_out) = (lo.d_in, lo.d_out);
        for c in 0..lo.r {
            du[c] = lo.scale * dot(g, &lo.b[c * d_out..(c + 1) * d_out]);
            axpy(&mut gb[c * d_out..(c + 1) * d_out], lo.scale * u[c], g);
            axpy(&mut ga_t[c * d_in..(c + 1) * d_in], du[c], x);
        }
        if mask.is_empty() {
            for c in 0..lo.r {
                axpy(dx, du[c], &lo.at[c * d_in..(c + 1) * d_in]);
            }
        } else {
            scratch.iter_mut().for_each(|v| *v = 0.0);
            for c in 0..lo.r {
                axpy(scratch, du[c], &lo.at[c * d_in..(c + 1) * d_in]);
            }
            for p in 0..d_in {
                dx[p] += scratch[p] * mask[p];
            }
        }
    }
}
