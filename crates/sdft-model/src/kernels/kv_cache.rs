//! The host key/value cache of the CPU forward step ([`HostKv`], one per
//! layer) and attention over it ([`attend`]): each row's query heads over its
//! slot's cached positions, the heads that share a key/value head together.

// Loops index explicitly so that they vectorize inside the multiversioned bodies.
#![allow(clippy::needless_range_loop)]

use super::numeric::{axpy, exp, max_of, sum, LANES};
use super::SendPtr;

/// One token to run: its slot in the cache, its id and its position.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub slot: usize,
    pub token: u32,
    pub pos: usize,
}

/// One layer's keys and values of every slot in host memory, written in place:
/// values `[slots, kv_heads, capacity, head_dim]`, keys transposed, `[slots,
/// kv_heads, head_dim, capacity]`, so that a query's scores over 16 positions
/// are 16 lanes of one multiply-add per dimension (no sums across lanes).
#[derive(Debug, Clone)]
pub struct HostKv {
    k: Vec<f32>,
    v: Vec<f32>,
    slots: usize,
    kv_heads: usize,
    capacity: usize,
    head_dim: usize,
}

impl HostKv {
    pub fn zeros(slots: usize, kv_heads: usize, capacity: usize, head_dim: usize) -> Self {
        let n = slots * kv_heads * capacity * head_dim;
        HostKv {
            k: vec![0.0; n],
            v: vec![0.0; n],
            slots,
            kv_heads,
            capacity,
            head_dim,
        }
    }

    /// Positions each slot holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Where `(slot, head)`'s block starts (the same offset in `k` and `v`).
    fn base(&self, slot: usize, head: usize) -> usize {
        (slot * self.kv_heads + head) * self.capacity * self.head_dim
    }

    /// Stores one position's key and value of `(slot, head)`.
    pub(super) fn write(
        &mut self,
        slot: usize,
        head: usize,
        pos: usize,
        key: &[f32],
        value: &[f32],
    ) {
        let (base, cap, hd) = (self.base(slot, head), self.capacity, self.head_dim);
        for (d, x) in key.iter().enumerate().take(hd) {
            self.k[base + d * cap + pos] = *x;
        }
        self.v[base + pos * hd..base + (pos + 1) * hd].copy_from_slice(&value[..hd]);
    }

    /// `(slot, head)`'s keys, `[head_dim, capacity]`.
    fn keys(&self, slot: usize, head: usize) -> &[f32] {
        let base = self.base(slot, head);
        &self.k[base..base + self.head_dim * self.capacity]
    }

    /// `(slot, head)`'s first `n` values, `[n, head_dim]`.
    fn values(&self, slot: usize, head: usize, n: usize) -> &[f32] {
        let base = self.base(slot, head);
        &self.v[base..base + n * self.head_dim]
    }

    /// Grows every slot to `capacity` positions (existing positions kept).
    pub fn grow(&mut self, capacity: usize) {
        if capacity <= self.capacity {
            return;
        }
        let (old, hd) = (self.capacity, self.head_dim);
        let mut next = HostKv::zeros(self.slots, self.kv_heads, capacity, hd);
        for sh in 0..self.slots * self.kv_heads {
            let (src, dst) = (sh * old * hd, sh * capacity * hd);
            next.v[dst..dst + old * hd].copy_from_slice(&self.v[src..src + old * hd]);
            for d in 0..hd {
                next.k[dst + d * capacity..dst + d * capacity + old]
                    .copy_from_slice(&self.k[src + d * old..src + (d + 1) * old]);
            }
        }
        *self = next;
    }
}

/// Attention of each row's query heads `q` `[rows, heads * hd]` over its slot's
/// cached positions `0..=pos`; returns `[rows, heads * hd]`. The query heads that
/// share a key/value head (grouped-query attention) are computed together.
pub(super) fn attend(q: &[f32], kv: &HostKv, rows: &[Row], heads: usize, out: &mut [f32]) {
    let (hd, kvh) = (kv.head_dim, kv.kv_heads);
    let group = heads / kvh;
    // Tasks of one row's groups each: single-token rows are short work, but
    // fewer, longer tasks leave one thread idle at the end of the section.
    let per_task = kvh.max(1);
    let units = rows.len() * kvh;
    let width = hd * group;
    let out_ptr = SendPtr(out.as_mut_ptr());
    super::team::Team::global().run(units.div_ceil(per_task), &|t| {
        let mut scores = Vec::new();
        for u in t * per_task..((t + 1) * per_task).min(units) {
            let (r, g) = (&rows[u / kvh], u % kvh);
            let n = r.pos + 1;
            // SAFETY: unit `u` alone writes `out[u * width..(u + 1) * width]`,
            // inside `out` (`units * width == out.len()`), which outlives the run.
            let o = unsafe { std::slice::from_raw_parts_mut(out_ptr.at(u * width), width) };
            group_attention(
                &q[u * width..(u + 1) * width],
                kv.keys(r.slot, g),
                kv.values(r.slot, g, n),
                kv.capacity,
                &mut scores,
                o,
            );
        }
    });
}

/// Positions per score block, and value dimensions per output block: four
/// vectors of accumulators held in registers.
const BLOCK: usize = 64;

/// Query heads computed together: each key and value vector loaded serves all
/// of them (four heads of four vectors of accumulators fill half the registers).
const HEADS: usize = 4;

multiversion! {
    /// `o = softmax(K q) V` (`q` already scaled by `1/sqrt(hd)`) for each query
    /// head of one group, over
    /// `n = values.len() / hd` positions; `keys` is `[hd, cap]` (transposed).
    /// Up to [`HEADS`] heads at a time. Explicit loops, so that the whole body
    /// is compiled for the detected vector width.
    fn group_attention(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        cap: usize,
        scores: &mut Vec<f32>,
        o: &mut [f32],
    ) -> () {
        let hd = keys.len() / cap;
        let heads = q.len() / hd;
        let mut h0 = 0;
        while h0 < heads {
            let g = (heads - h0).min(HEADS);
            let (qs, os) = (&q[h0 * hd..(h0 + g) * hd], &mut o[h0 * hd..(h0 + g) * hd]);
            match g {
                1 => heads_attention::<1>(qs, keys, values, cap, scores, os),
                2 => heads_attention::<2>(qs, keys, values, cap, scores, os),
                3 => heads_attention::<3>(qs, keys, values, cap, scores, os),
                _ => heads_attention::<HEADS>(qs, keys, values, cap, scores, os),
            }
            h0 += g;
        }
    }
}

/// [`group_attention`] for exactly `G` heads (inlined into its vector-width
/// versions).
#[inline(always)]
fn heads_attention<const G: usize>(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    cap: usize,
    scores: &mut Vec<f32>,
    o: &mut [f32],
) {
    let hd = keys.len() / cap;
    let n = values.len() / hd;
    // Scores are computed up to a whole vector past `n` where the cache has room
    // (positions past `n` hold stale or zero keys; their scores are never read).
    let padded = n.div_ceil(LANES) * LANES;
    let span = if padded <= cap { padded } else { n };
    scores.clear();
    scores.resize(G * span, 0.0);
    let qd = |g: usize, d: usize| q[g * hd + d];
    let mut t0 = 0;
    while t0 + BLOCK <= span {
        score_block::<G, BLOCK>(&qd, keys, cap, hd, t0, &mut scores[..], span);
        t0 += BLOCK;
    }
    while t0 + LANES <= span {
        score_block::<G, LANES>(&qd, keys, cap, hd, t0, &mut scores[..], span);
        t0 += LANES;
    }
    for t in t0..span {
        for g in 0..G {
            let mut acc = 0f32;
            for d in 0..hd {
                acc += qd(g, d) * keys[d * cap + t];
            }
            scores[g * span + t] = acc;
        }
    }
    let mut inv = [0f32; G];
    for g in 0..G {
        let sc = &mut scores[g * span..g * span + n];
        let max = max_of(sc);
        // Exponentials first (a loop with no carried sum, so it vectorizes), then
        // their sum in lanes.
        for t in 0..n {
            sc[t] = exp(sc[t] - max);
        }
        inv[g] = 1.0 / sum(sc);
    }
    // The weighted sums of values, BLOCK dimensions at a time in registers.
    let mut c0 = 0;
    while c0 + BLOCK <= hd {
        let mut acc = [[0f32; BLOCK]; G];
        for t in 0..n {
            let vr = &values[t * hd + c0..t * hd + c0 + BLOCK];
            for g in 0..G {
                let p = scores[g * span + t];
                for l in 0..BLOCK {
                    acc[g][l] = p.mul_add(vr[l], acc[g][l]);
                }
            }
        }
        for g in 0..G {
            for l in 0..BLOCK {
                o[g * hd + c0 + l] = acc[g][l] * inv[g];
            }
        }
        c0 += BLOCK;
    }
    if c0 < hd {
        for g in 0..G {
            let rest = &mut o[g * hd + c0..(g + 1) * hd];
            rest.fill(0.0);
            for t in 0..n {
                axpy(
                    rest,
                    scores[g * span + t],
                    &values[t * hd + c0..(t + 1) * hd],
                );
            }
            for x in rest.iter_mut() {
                *x *= inv[g];
            }
        }
    }
}

/// The scores of `G` heads at the `W` positions from `t0` (`W` accumulators per
/// head held in registers across the `hd` dimensions), into `scores` (`G` rows
/// of `span`).
#[inline(always)]
fn score_block<const G: usize, const W: usize>(
    qd: &impl Fn(usize, usize) -> f32,
    keys: &[f32],
    cap: usize,
    hd: usize,
    t0: usize,
    scores: &mut [f32],
    span: usize,
) {
    let mut acc = [[0f32; W]; G];
    for d in 0..hd {
        let kr = &keys[d * cap + t0..d * cap + t0 + W];
        for g in 0..G {
            let x = qd(g, d);
            for l in 0..W {
                acc[g][l] = x.mul_add(kr[l], acc[g][l]);
            }
        }
    }
    for g in 0..G {
        scores[g * span + t0..g * span + t0 + W].copy_from_slice(&acc[g]);
    }
}
