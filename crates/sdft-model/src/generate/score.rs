//! Scoring on the CPU kernels with shared prefixes: consecutive requests with
//! the same prompt (a multiple-choice question's choices) run that prompt once,
//! and each continuation runs from its cached keys and values.
//!
//! Requests are cut into batches of groups (one group = one prompt and its
//! continuations). A batch runs as one forward pass over every group's prompt
//! (one cache slot per group; logits only at each prompt's last position, which
//! give each continuation's first token), then one pass per choice index `j`
//! over the `j`-th continuation of every group, at the positions after its
//! prompt in the group's slot: a later pass overwrites the earlier
//! continuation's positions, and a row attends only to positions up to its own,
//! so each continuation sees exactly its prompt and itself. A continuation's
//! last token needs no pass (nothing is predicted from it).

#[cfg(feature = "flex")]
use sdft_core::Score;

#[cfg(feature = "flex")]
use crate::kernels::decode::{forward, HostKv, HostModel, Row, Scratch};

#[cfg(feature = "flex")]
/// Prompt rows per batch: enough to keep the packed products efficient.
const BATCH_ROWS: usize = 1024;
#[cfg(feature = "flex")]
/// Host memory for one batch's key/value cache.
const CACHE_BYTES: usize = 512 << 20;

#[cfg(feature = "flex")]
/// One prompt and the indices (into the request list) of its continuations.
struct Group {
    prompt: usize,
    requests: Vec<usize>,
}

/// Token counts of what a scorer evaluated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScoreCounts {
    /// Prompt tokens, each shared prompt counted once.
    pub context_tokens: u64,
    pub continuation_tokens: u64,
}

impl ScoreCounts {
    pub fn tokens(&self) -> u64 {
        self.context_tokens + self.continuation_tokens
    }
}

#[cfg(feature = "flex")]
/// `log softmax(logits)[target]`, accumulated in `f64`.
fn logprob(logits: &[f32], lse: f64, target: u32) -> f64 {
    logits[target as usize] as f64 - lse
}

#[cfg(feature = "flex")]
use crate::kernels::numeric::log_sum_exp;

#[cfg(feature = "flex")]
/// Reused per-layer caches, regrown when a batch needs more slots or positions.
#[derive(Default)]
struct Caches {
    layers: Vec<HostKv>,
    slots: usize,
    capacity: usize,
}

#[cfg(feature = "flex")]
impl Caches {
    fn fit(&mut self, m: &HostModel, n_layers: usize, slots: usize, capacity: usize) {
        if slots > self.slots || capacity > self.capacity || self.layers.len() != n_layers {
            self.slots = slots.max(self.slots);
            self.capacity = capacity.max(self.capacity);
            self.layers = (0..n_layers)
                .map(|_| HostKv::zeros(self.slots, m.n_kv_heads, self.capacity, m.head_dim))
                .collect();
        }
    }
}

#[cfg(feature = "flex")]
/// Sum log-likelihood of each `(prompt, continuation)` token pair (prompts
/// non-empty), prompts shared by consecutive requests evaluated once; also
/// returns the token counts.
pub(super) fn score_shared(
    m: &HostModel,
    n_layers: usize,
    seqs: &[(Vec<u32>, Vec<u32>)],
) -> (Vec<Score>, ScoreCounts) {
    let mut groups: Vec<Group> = Vec::new();
    for (i, (p, _)) in seqs.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if seqs[g.prompt].0 == *p => g.requests.push(i),
            _ => groups.push(Group {
                prompt: i,
                requests: vec![i],
            }),
        }
    }
    let mut counts = ScoreCounts::default();
    let mut sums = vec![0f64; seqs.len()];
    let per_position = n_layers * m.n_kv_heads * m.head_dim * 2 * std::mem::size_of::<f32>();
    let max_positions = (CACHE_BYTES / per_position.max(1)).max(1);
    let mut caches = Caches::default();
    let mut scratch = Scratch::default();
    let mut at = 0;
    while at < groups.len() {
        // Take groups while their prompts and their cache stay within budget.
        let (mut rows, mut cap, mut end) = (0usize, 0usize, at);
        while end < groups.len() {
            let g = &groups[end];
            let plen = seqs[g.prompt].0.len();
            let len = g
                .requests
                .iter()
                .map(|&r| plen + seqs[r].1.len())
                .max()
                .unwrap_or(plen);
            let slots = end - at + 1;
            if end > at && (rows + plen > BATCH_ROWS || slots * cap.max(len) > max_positions) {
                break;
            }
            rows += plen;
            cap = cap.max(len);
            end += 1;
        }
        let batch = &groups[at..end];
        caches.fit(m, n_layers, batch.len(), cap);
        // The prompts.
        let mut rows = Vec::with_capacity(rows);
        let mut last = Vec::with_capacity(batch.len());
        for (slot, g) in batch.iter().enumerate() {
            let p = &seqs[g.prompt].0;
            rows.extend(
                p.iter()
                    .enumerate()
                    .map(|(pos, &token)| Row { slot, token, pos }),
            );
            last.push(rows.len() - 1);
            counts.context_tokens += p.len() as u64;
        }
        let logits = forward(m, &rows, &mut caches.layers, &mut scratch, &last);
        for (g, l) in batch.iter().zip(&logits) {
            let lse = log_sum_exp(l);
            for &r in &g.requests {
                counts.continuation_tokens += seqs[r].1.len() as u64;
                if let Some(&first) = seqs[r].1.first() {
                    sums[r] += logprob(l, lse, first);
                }
            }
        }
        drop(logits);
        // One pass per choice index over every group's continuation of that index.
        let choices = batch.iter().map(|g| g.requests.len()).max().unwrap_or(0);
        for j in 0..choices {
            let mut rows = Vec::new();
            let mut targets: Vec<(usize, u32)> = Vec::new();
            for (slot, g) in batch.iter().enumerate() {
                let Some(&r) = g.requests.get(j) else {
                    continue;
                };
                let (p, c) = (&seqs[r].0, &seqs[r].1);
                for t in 0..c.len().saturating_sub(1) {
                    rows.push(Row {
                        slot,
                        token: c[t],
                        pos: p.len() + t,
                    });
                    targets.push((r, c[t + 1]));
                }
            }
            if rows.is_empty() {
                continue;
            }
            let all: Vec<usize> = (0..rows.len()).collect();
            let logits = forward(m, &rows, &mut caches.layers, &mut scratch, &all);
            for ((r, target), l) in targets.into_iter().zip(&logits) {
                sums[r] += logprob(l, log_sum_exp(l), target);
            }
        }
        at = end;
    }
    let scores = seqs
        .iter()
        .zip(sums)
        .map(|((_, c), s)| Score {
            sum_logprob: s,
            tokens: c.len(),
        })
        .collect();
    (scores, counts)
}

#[cfg(feature = "flex")]
/// Log-probabilities over the vocabulary at positions `from..from + n` of `seq`
/// (one sequence, one forward pass on the kernels; the row of position `i`
/// predicts token `i + 1`).
pub(super) fn next_token_logprobs(
    m: &HostModel,
    seq: &[u32],
    from: usize,
    n: usize,
) -> Vec<Vec<f32>> {
    let at: Vec<usize> = (from..from + n).collect();
    let mut logits = crate::kernels::decode::sequence_logits_at(m, seq, &at);
    for l in &mut logits {
        let lse = log_sum_exp(l);
        l.iter_mut().for_each(|x| *x = (*x as f64 - lse) as f32);
    }
    logits
}
