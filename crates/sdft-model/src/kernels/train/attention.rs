//! Causal attention of one sequence over one key/value head (the `rep` query
//! heads that share it), forward and backward, as packed products over blocks
//! of [`QB`] queries. A block sees only the keys up to its last query, so its
//! products cover `[rep · QB, end of block]` scores instead of the whole
//! `[rep · len, len]` square: at a length of 256 about 62% of the square's work,
//! at 1024 about 53%. Only each query's log-sum-exp is kept between the passes;
//! the backward recomputes the probabilities.

// Loops index explicitly so that they vectorize inside the multiversioned bodies.
#![allow(clippy::needless_range_loop)]
#![allow(clippy::too_many_arguments)]

use super::super::decode::HostModel;
use super::super::numeric::{dot, exp, max_of};
use super::super::packed::{matmul_packed_into, PackedMatrix};

/// Queries per block.
const QB: usize = 64;

/// The query blocks of a sequence of `len`: `(first query, end)`.
fn blocks(len: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..len).step_by(QB).map(move |b0| (b0, (b0 + QB).min(len)))
}

/// Columns `off..off + len` rows of query heads of group `g` (`[rep, len, hd]`),
/// and its key and value head (`[len, hd]` each), contiguous.
pub(super) fn gather_heads(
    qkv: &[f32],
    m: &HostModel,
    off: usize,
    len: usize,
    g: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (h, kvh, hd) = (m.n_heads, m.n_kv_heads, m.head_dim);
    let (qw, kw) = (h * hd, kvh * hd);
    let w = qw + 2 * kw;
    let rep = h / kvh;
    let mut q = vec![0f32; rep * len * hd];
    let mut k = vec![0f32; len * hd];
    let mut v = vec![0f32; len * hd];
    for i in 0..len {
        let row = &qkv[(off + i) * w..(off + i + 1) * w];
        for r in 0..rep {
            let head = g * rep + r;
            q[(r * len + i) * hd..][..hd].copy_from_slice(&row[head * hd..(head + 1) * hd]);
        }
        k[i * hd..(i + 1) * hd].copy_from_slice(&row[qw + g * hd..qw + (g + 1) * hd]);
        v[i * hd..(i + 1) * hd].copy_from_slice(&row[qw + kw + g * hd..qw + kw + (g + 1) * hd]);
    }
    (q, k, v)
}

/// Row-major `[rows, cols]` to `[cols, rows]`.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    debug_assert_eq!(x.len(), rows * cols);
    let mut out = vec![0f32; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = x[r * cols + c];
        }
    }
    out
}

/// Rows `b0..b1` of each of the `rep` heads of `x` (`[rep, len, w]`), stacked:
/// `[rep · (b1 − b0), w]`.
fn take_block(x: &[f32], len: usize, w: usize, b0: usize, b1: usize) -> Vec<f32> {
    let rep = x.len() / (len * w);
    let mut out = Vec::with_capacity(rep * (b1 - b0) * w);
    for r in 0..rep {
        out.extend_from_slice(&x[(r * len + b0) * w..(r * len + b1) * w]);
    }
    out
}

/// The inverse of [`take_block`]: writes the stacked block back into `x`.
fn put_block(x: &mut [f32], len: usize, w: usize, b0: usize, b1: usize, block: &[f32]) {
    let nb = b1 - b0;
    for (r, part) in block.chunks_exact(nb * w).enumerate() {
        x[(r * len + b0) * w..(r * len + b1) * w].copy_from_slice(part);
    }
}

/// Causal attention of `rep` query heads (`q` `[rep, len, hd]`) over one key
/// and value head (`[len, hd]`): `o` `[rep, len, hd]` and the log-sum-exp of
/// each query's scaled scores, `lse` `[rep, len]`.
pub(super) fn attn_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    len: usize,
    hd: usize,
    scale: f32,
    o: &mut [f32],
    lse: &mut [f32],
) {
    let rep = q.len() / (len * hd).max(1);
    for (b0, b1) in blocks(len) {
        let rows = rep * (b1 - b0);
        let keys = PackedMatrix::pack(&k[..b1 * hd], b1, hd);
        let values_t = PackedMatrix::pack(&transpose(&v[..b1 * hd], b1, hd), hd, b1);
        let mut s = vec![0f32; rows * b1];
        matmul_packed_into(&take_block(q, len, hd, b0, b1), rows, &keys, &mut s);
        let mut l = vec![0f32; rows];
        causal_softmax(&mut s, b0, b1 - b0, b1, scale, &mut l);
        let mut ob = vec![0f32; rows * hd];
        matmul_packed_into(&s, rows, &values_t, &mut ob);
        put_block(o, len, hd, b0, b1, &ob);
        put_block(lse, len, 1, b0, b1, &l);
    }
}

multiversion! {
    /// Row `r` of `s` (`[rows, width]`, the scores of query `i = b0 + r mod nb`
    /// against keys `0..width`): the softmax of `scale ·` its first `i + 1`
    /// scores, zeros after; `lse[r]` the log-sum-exp.
    fn causal_softmax(s: &mut [f32], b0: usize, nb: usize, width: usize, scale: f32, lse: &mut [f32]) -> () {
        for (r, row) in s.chunks_exact_mut(width).enumerate() {
            let i = b0 + r % nb;
            let (live, dead) = row.split_at_mut(i + 1);
            for x in live.iter_mut() {
                *x *= scale;
            }
            let m = max_of(live);
            let mut sum = 0f32;
            for x in live.iter_mut() {
                *x = exp(*x - m);
                sum += *x;
            }
            let inv = 1.0 / sum;
            for x in live.iter_mut() {
                *x *= inv;
            }
            dead.iter_mut().for_each(|x| *x = 0.0);
            lse[r] = m + sum.ln();
        }
    }
}

multiversion! {
    /// `ds = p ⊙ (dp − rowdot(d_o, o)) · scale` in place of `dp`, with `p`
    /// recomputed from the scores `s` and `lse` (in place of `s`); rows as in
    /// [`causal_softmax`].
    fn softmax_backward(
        s: &mut [f32],
        dp: &mut [f32],
        o: &[f32],
        d_o: &[f32],
        lse: &[f32],
        b0: usize,
        nb: usize,
        width: usize,
        hd: usize,
        scale: f32,
    ) -> () {
        for (r, (row, drow)) in s.chunks_exact_mut(width).zip(dp.chunks_exact_mut(width)).enumerate() {
            let i = b0 + r % nb;
            let delta = dot(&d_o[r * hd..(r + 1) * hd], &o[r * hd..(r + 1) * hd]);
            let l = lse[r];
            for j in 0..width {
                let p = if j <= i { exp(row[j] * scale - l) } else { 0.0 };
                row[j] = p;
                drow[j] = p * (drow[j] - delta) * scale;
            }
        }
    }
}

/// The backward of [`attn_forward`] for the output gradient `d_o`: `dq`
/// `[rep, len, hd]`, `dk` and `dv` `[len, hd]` (summed over the `rep` query
/// heads; overwritten).
pub(super) fn attn_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    d_o: &[f32],
    lse: &[f32],
    len: usize,
    hd: usize,
    scale: f32,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let rep = q.len() / (len * hd).max(1);
    dk.fill(0.0);
    dv.fill(0.0);
    for (b0, b1) in blocks(len) {
        let (nb, w) = (b1 - b0, b1);
        let rows = rep * nb;
        let (kb, vb) = (&k[..b1 * hd], &v[..b1 * hd]);
        let qb = take_block(q, len, hd, b0, b1);
        let dob = take_block(d_o, len, hd, b0, b1);
        let mut p = vec![0f32; rows * w];
        matmul_packed_into(&qb, rows, &PackedMatrix::pack(kb, b1, hd), &mut p);
        let mut ds = vec![0f32; rows * w];
        matmul_packed_into(&dob, rows, &PackedMatrix::pack(vb, b1, hd), &mut ds);
        softmax_backward(
            &mut p,
            &mut ds,
            &take_block(o, len, hd, b0, b1),
            &dob,
            &take_block(lse, len, 1, b0, b1),
            b0,
            nb,
            w,
            hd,
            scale,
        );
        // dq = ds·K, over the block's keys.
        let mut dqb = vec![0f32; rows * hd];
        let keys_t = PackedMatrix::pack(&transpose(kb, b1, hd), hd, b1);
        matmul_packed_into(&ds, rows, &keys_t, &mut dqb);
        put_block(dq, len, hd, b0, b1, &dqb);
        // dk[..b1] += dsᵀ·q and dv[..b1] += pᵀ·d_o over the block's queries.
        let mut part = vec![0f32; b1 * hd];
        let q_t = PackedMatrix::pack(&transpose(&qb, rows, hd), hd, rows);
        matmul_packed_into(&transpose(&ds, rows, w), b1, &q_t, &mut part);
        dk[..b1 * hd]
            .iter_mut()
            .zip(&part)
            .for_each(|(a, b)| *a += b);
        let do_t = PackedMatrix::pack(&transpose(&dob, rows, hd), hd, rows);
        matmul_packed_into(&transpose(&p, rows, w), b1, &do_t, &mut part);
        dv[..b1 * hd]
            .iter_mut()
            .zip(&part)
            .for_each(|(a, b)| *a += b);
    }
}
