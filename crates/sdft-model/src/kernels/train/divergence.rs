//! The on-policy self-distillation loss of one position (Shenfeld et al. 2026,
//! as TRL's `trl/experimental/sdft/loss_utils.py` computes it) and its gradient
//! with respect to the student's logits.
//!
//! At a position the student has logits `z` (log-probabilities `ℓ = z − lse(z)`,
//! probabilities `π`) and the teacher, the same model shown the demonstration,
//! has log-probabilities `t` (held fixed: no gradient flows into the teacher).
//! The two are compared on a support of buckets:
//!
//! - **full vocabulary** (`topk = 0`): every token is a bucket;
//! - **top-K with a tail** (`topk = K`, `tail = true`): the K tokens the
//!   *student* ranks highest, plus one bucket holding the rest of each side's
//!   mass, `log(1 − Σ_S e^ℓ)` (the sum's log clamped at `−1e-7`, as TRL does);
//! - **top-K renormalised** (`tail = false`): the K tokens, each side's
//!   log-probabilities renormalised over them.
//!
//! On the buckets' student log-probabilities `ℓ` and teacher's `t`:
//!
//! - `forward`: `KL(teacher ‖ student) = Σ e^t (t − ℓ)`, TRL's `alpha = 0`;
//! - `reverse`: `KL(student ‖ teacher) = Σ e^ℓ (ℓ − t)`, TRL's `alpha = 1`;
//! - `jsd` with `α`: with the mixture `m = (1 − α) e^ℓ + α e^t`,
//!   `(1 − α) KL(student ‖ m) + α KL(teacher ‖ m)`, TRL's `0 < alpha < 1`.
//!
//! **The gradient.** Write `h_k = ∂L/∂ℓ_k` with the buckets' `ℓ_k` taken as free
//! variables: `forward` `−e^{t_k}`, `reverse` `e^{ℓ_k} (ℓ_k − t_k + 1)`, `jsd`
//! `(1 − α) e^{ℓ_k} (ℓ_k − log m_k)` (the other terms of the mixture's
//! derivative cancel). Through `ℓ = z − lse(z)`, and through the tail's
//! `log(1 − Σ_S π)`, with `c = Σ_k h_k` over all buckets:
//!
//! - full vocabulary: `∂L/∂z_j = h_j − π_j c`;
//! - top-K with a tail: `h_j − π_j c` for `j` in the support, and
//!   `π_j (h_tail / q_tail − c)` outside it (`q_tail = 1 − Σ_S π`); when the
//!   clamp is active the tail is a constant, and the tail terms drop out;
//! - renormalised top-K: `h_j − σ_j Σ_S h` in the support (`σ` the softmax over
//!   it), zero outside.
//!
//! Tests check these against finite differences here and against torch
//! autograd over TRL's functions in `sdft-train`'s golden test.

use serde::{Deserialize, Serialize};

/// Which divergence [`position_loss`] computes (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Divergence {
    /// `KL(student ‖ teacher)`: mode-seeking, the on-policy paper's choice.
    Reverse,
    /// `KL(teacher ‖ student)`: mass-covering, what cross-entropy on teacher
    /// samples estimates.
    Forward,
    /// The generalised Jensen-Shannon divergence with mixture weight `alpha` on
    /// the teacher (strictly between 0 and 1).
    Jsd { alpha: f64 },
}

impl Divergence {
    /// `reverse`, `forward` or `jsd`.
    pub fn name(&self) -> &'static str {
        match self {
            Divergence::Reverse => "reverse",
            Divergence::Forward => "forward",
            Divergence::Jsd { .. } => "jsd",
        }
    }

    /// TRL's `distillation_alpha` for this divergence.
    pub fn trl_alpha(&self) -> f64 {
        match *self {
            Divergence::Reverse => 1.0,
            Divergence::Forward => 0.0,
            Divergence::Jsd { alpha } => alpha,
        }
    }
}

/// The per-position distillation loss: a divergence over a support.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DistillLoss {
    pub divergence: Divergence,
    /// The student's top-K tokens as the support; 0 (or at least the
    /// vocabulary's size) for the whole vocabulary.
    pub topk: usize,
    /// With a top-K support: one more bucket for the rest of the mass (TRL's
    /// `distillation_add_tail`), else the K tokens renormalised.
    pub tail: bool,
}

impl Default for DistillLoss {
    /// Reverse KL over the student's top 20 plus a tail bucket.
    fn default() -> Self {
        DistillLoss {
            divergence: Divergence::Reverse,
            topk: 20,
            tail: true,
        }
    }
}

/// The tail bucket's log: `log(1 − e^{log_s})` with `log_s` clamped at
/// `−1e-7`; also whether the clamp was active.
fn tail_log(log_s: f64) -> (f64, bool) {
    const MAX: f64 = -1e-7;
    let clamped = log_s > MAX;
    let s = if clamped { MAX } else { log_s };
    ((-s.exp_m1()).ln(), clamped)
}

fn logsumexp(v: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = v.clone().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// The divergence of bucket log-probabilities `l` (student) and `t` (teacher),
/// and `h = ∂L/∂l` into `h`.
fn divergence(d: Divergence, l: &[f64], t: &[f64], h: &mut [f64]) -> f64 {
    let mut loss = 0.0;
    for k in 0..l.len() {
        let (lk, tk) = (l[k], t[k]);
        let (q, p) = (lk.exp(), tk.exp());
        match d {
            Divergence::Forward => {
                if p > 0.0 {
                    loss += p * (tk - lk);
                }
                h[k] = -p;
            }
            Divergence::Reverse => {
                if q > 0.0 {
                    loss += q * (lk - tk);
                    h[k] = q * (lk - tk + 1.0);
                } else {
                    h[k] = 0.0;
                }
            }
            Divergence::Jsd { alpha } => {
                let log_m = logsumexp([lk + (1.0 - alpha).ln(), tk + alpha.ln()].into_iter());
                let ks = if q > 0.0 { q * (lk - log_m) } else { 0.0 };
                let kt = if p > 0.0 { p * (tk - log_m) } else { 0.0 };
                loss += (1.0 - alpha) * ks + alpha * kt;
                h[k] = (1.0 - alpha) * ks;
            }
        }
    }
    loss
}

/// The loss at one position, from the student's logits `z` and the teacher's
/// log-probabilities `teacher` over the same vocabulary; `z` is replaced by
/// `scale ·` the gradient of the loss with respect to it.
///
/// # Panics
/// When `z` and `teacher` differ in length.
pub fn position_loss(z: &mut [f32], teacher: &[f32], loss: &DistillLoss, scale: f32) -> f64 {
    assert_eq!(z.len(), teacher.len(), "student and teacher vocabularies");
    let vocab = z.len();
    let lse = logsumexp(z.iter().map(|&x| x as f64));
    let logp = |j: usize| z[j] as f64 - lse;
    let topk = if loss.topk == 0 {
        vocab
    } else {
        loss.topk.min(vocab)
    };
    if topk == vocab {
        let l: Vec<f64> = (0..vocab).map(logp).collect();
        let t: Vec<f64> = teacher.iter().map(|&x| x as f64).collect();
        let mut h = vec![0.0; vocab];
        let value = divergence(loss.divergence, &l, &t, &mut h);
        let c: f64 = h.iter().sum();
        for j in 0..vocab {
            z[j] = (scale as f64 * (h[j] - l[j].exp() * c)) as f32;
        }
        return value;
    }
    // The student's top K, largest first (ties by the lower index).
    let mut order: Vec<u32> = (0..vocab as u32).collect();
    let by_logit = |a: &u32, b: &u32| z[*b as usize].total_cmp(&z[*a as usize]).then(a.cmp(b));
    order.select_nth_unstable_by(topk - 1, by_logit);
    let mut support = order[..topk].to_vec();
    support.sort_unstable_by(by_logit);
    let mut l: Vec<f64> = support.iter().map(|&j| logp(j as usize)).collect();
    let mut t: Vec<f64> = support
        .iter()
        .map(|&j| teacher[j as usize] as f64)
        .collect();
    let (value, grad_in, grad_out) = if loss.tail {
        let (l_tail, clamped) = tail_log(logsumexp(l.iter().copied()));
        let (t_tail, _) = tail_log(logsumexp(t.iter().copied()));
        l.push(l_tail);
        t.push(t_tail);
        let mut h = vec![0.0; topk + 1];
        let value = divergence(loss.divergence, &l, &t, &mut h);
        let h_tail = h[topk];
        let q_tail = l_tail.exp();
        if clamped {
            // The tail is a constant: only the support's terms remain.
            let c: f64 = h[..topk].iter().sum();
            (value, h, (0.0, c))
        } else {
            let c: f64 = h.iter().sum();
            (value, h, (h_tail / q_tail, c))
        }
    } else {
        let ls = logsumexp(l.iter().copied());
        let ts = logsumexp(t.iter().copied());
        l.iter_mut().for_each(|x| *x -= ls);
        t.iter_mut().for_each(|x| *x -= ts);
        let mut h = vec![0.0; topk];
        let value = divergence(loss.divergence, &l, &t, &mut h);
        let c: f64 = h.iter().sum();
        // Within the support σ_j = e^{l_j} (renormalised), outside nothing.
        let sigma_grads: Vec<f64> = (0..topk).map(|k| h[k] - l[k].exp() * c).collect();
        z.iter_mut().for_each(|x| *x = 0.0);
        for (k, &j) in support.iter().enumerate() {
            z[j as usize] = (scale as f64 * sigma_grads[k]) as f32;
        }
        return value;
    };
    // Top-K with a tail: `π_j (outside − c)` off the support, `h_j − π_j c` on it.
    let (outside, c) = grad_out;
    let pi: Vec<f64> = (0..vocab).map(|j| logp(j).exp()).collect();
    for j in 0..vocab {
        z[j] = (scale as f64 * pi[j] * (outside - c)) as f32;
    }
    for (k, &j) in support.iter().enumerate() {
        let j = j as usize;
        z[j] = (scale as f64 * (grad_in[k] - pi[j] * c)) as f32;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_softmax(z: &[f64]) -> Vec<f64> {
        let lse = logsumexp(z.iter().copied());
        z.iter().map(|x| x - lse).collect()
    }

    fn value(z: &[f64], teacher: &[f32], loss: &DistillLoss) -> f64 {
        let mut zz: Vec<f32> = z.iter().map(|&x| x as f32).collect();
        position_loss(&mut zz, teacher, loss, 1.0)
    }

    /// Central differences in f64 logits (the loss itself is computed in f64
    /// from f32 inputs, so steps are kept at a size f32 resolves).
    fn check_gradient(loss: DistillLoss) {
        let mut rng = sdft_core::rng::SplitMix64::new(7);
        let vocab = 12;
        let z: Vec<f64> = (0..vocab).map(|_| 3.0 * (rng.next_f64() - 0.5)).collect();
        let t_logits: Vec<f64> = (0..vocab).map(|_| 3.0 * (rng.next_f64() - 0.5)).collect();
        let teacher: Vec<f32> = log_softmax(&t_logits).iter().map(|&x| x as f32).collect();
        let mut g: Vec<f32> = z.iter().map(|&x| x as f32).collect();
        position_loss(&mut g, &teacher, &loss, 1.0);
        let eps = 1e-3;
        for j in 0..vocab {
            let (mut up, mut down) = (z.clone(), z.clone());
            up[j] += eps;
            down[j] -= eps;
            let numeric =
                (value(&up, &teacher, &loss) - value(&down, &teacher, &loss)) / (2.0 * eps);
            assert!(
                (numeric - g[j] as f64).abs() < 2e-3,
                "{loss:?} token {j}: numeric {numeric}, analytic {}",
                g[j]
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for divergence in [
            Divergence::Reverse,
            Divergence::Forward,
            Divergence::Jsd { alpha: 0.5 },
            Divergence::Jsd { alpha: 0.1 },
        ] {
            for (topk, tail) in [(0, true), (4, true), (4, false), (12, true)] {
                check_gradient(DistillLoss {
                    divergence,
                    topk,
                    tail,
                });
            }
        }
    }

    #[test]
    fn equal_distributions_have_zero_loss_and_gradient() {
        let z = [0.3f32, -1.0, 2.0, 0.5, -0.2];
        let lse = logsumexp(z.iter().map(|&x| x as f64));
        let teacher: Vec<f32> = z.iter().map(|&x| (x as f64 - lse) as f32).collect();
        for divergence in [
            Divergence::Reverse,
            Divergence::Forward,
            Divergence::Jsd { alpha: 0.3 },
        ] {
            for (topk, tail) in [(0, true), (2, true), (2, false)] {
                let mut g = z;
                let v = position_loss(
                    &mut g,
                    &teacher,
                    &DistillLoss {
                        divergence,
                        topk,
                        tail,
                    },
                    1.0,
                );
                assert!(v.abs() < 1e-6, "{divergence:?} {topk} {tail}: {v}");
                assert!(g.iter().all(|x| x.abs() < 1e-5), "{g:?}");
            }
        }
    }

    /// Reverse KL by hand on two tokens: student (0.5, 0.5), teacher (0.9, 0.1).
    #[test]
    fn hand_computed_reverse_kl() {
        let teacher = [0.9f32.ln(), 0.1f32.ln()];
        let mut z = [0.0f32, 0.0];
        let loss = DistillLoss {
            divergence: Divergence::Reverse,
            topk: 0,
            tail: true,
        };
        let v = position_loss(&mut z, &teacher, &loss, 1.0);
        let expected = 0.5 * (0.5f64 / 0.9).ln() + 0.5 * (0.5f64 / 0.1).ln();
        assert!((v - expected).abs() < 1e-6, "{v} vs {expected}");
        // d/dz_0 = π_0 (ℓ_0 − t_0 − Σ π (ℓ − t)) = 0.5 (ln(0.5/0.9) − expected).
        let g0 = 0.5 * ((0.5f64 / 0.9).ln() - expected);
        assert!((z[0] as f64 - g0).abs() < 1e-6 && (z[1] as f64 + g0).abs() < 1e-6);
    }
}
