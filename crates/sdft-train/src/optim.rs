//! AdamW on host-side f32 parameters, as PyTorch's `torch.optim.AdamW` computes it
//! (decoupled weight decay; bias-corrected moments; `eps` added to the corrected
//! root), and global-norm gradient clipping as `clip_grad_norm_`. The whole state
//! is plain vectors, so checkpoints restore it exactly.

use serde::{Deserialize, Serialize};

/// AdamW hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// First and second moments of every parameter, and the step count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdamState {
    pub step: u64,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

impl AdamState {
    pub fn zeros(sizes: &[usize]) -> Self {
        AdamState {
            step: 0,
            m: sizes.iter().map(|n| vec![0.0; *n]).collect(),
            v: sizes.iter().map(|n| vec![0.0; *n]).collect(),
        }
    }
}

impl AdamW {
    /// One update of `params` with `grads` at learning rate `lr`.
    pub fn step(
        &self,
        state: &mut AdamState,
        params: &mut [Vec<f32>],
        grads: &[Vec<f32>],
        lr: f64,
    ) {
        state.step += 1;
        let t = state.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let step_size = (lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let decay = (1.0 - lr * self.weight_decay) as f32;
        let (b1, b2, eps) = (self.beta1 as f32, self.beta2 as f32, self.eps as f32);
        for (i, p) in params.iter_mut().enumerate() {
            let (m, v, g) = (&mut state.m[i], &mut state.v[i], &grads[i]);
            for j in 0..p.len() {
                p[j] *= decay;
                m[j] = m[j] * b1 + (1.0 - b1) * g[j];
                v[j] = v[j] * b2 + (1.0 - b2) * g[j] * g[j];
                let denom = v[j].sqrt() / bc2_sqrt + eps;
                p[j] -= step_size * m[j] / denom;
            }
        }
    }
}

/// The global L2 norm of all gradients (computed in f64).
pub fn global_norm(grads: &[Vec<f32>]) -> f64 {
    grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt()
}

/// Scales gradients so their global norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: factor `max_norm / (norm + 1e-6)` when below 1). Returns the
/// norm before clipping.
pub fn clip_global_norm(grads: &mut [Vec<f32>], max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            grads
                .iter_mut()
                .flat_map(|g| g.iter_mut())
                .for_each(|x| *x *= coef as f32);
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_torch_adamw_by_hand() {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.01) with p=1.0, g=0.5, two steps:
        // step1: p=1*(1-0.001)=0.999; m=0.05 v=0.00025; mhat=0.5 vhat=0.25 -> p-=0.1*0.5/(0.5+1e-8) -> 0.899
        let opt = AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let mut st = AdamState::zeros(&[1]);
        let mut p = vec![vec![1.0f32]];
        opt.step(&mut st, &mut p, &[vec![0.5]], 0.1);
        assert!((p[0][0] - 0.899).abs() < 1e-6, "{}", p[0][0]);
        // step2 with the same grad: moments stay at the gradient after correction.
        opt.step(&mut st, &mut p, &[vec![0.5]], 0.1);
        let expect = 0.899 * (1.0 - 0.001) - 0.1;
        assert!((p[0][0] - expect as f32).abs() < 1e-5, "{}", p[0][0]);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let mut g = vec![vec![3.0f32], vec![4.0]];
        assert_eq!(clip_global_norm(&mut g, 1.0), 5.0);
        assert!((global_norm(&g) - 1.0).abs() < 1e-5);
        let mut small = vec![vec![0.1f32]];
        clip_global_norm(&mut small, 1.0);
        assert_eq!(small[0][0], 0.1);
    }
}
