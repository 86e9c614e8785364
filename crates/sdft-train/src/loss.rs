//! How an optimizer step's loss is normalised over its micro-batches.
//!
//! A step of `grad_accum` micro-batches has summed negative log-likelihoods `nll_k`
//! over `n_k` target tokens each. Two conventions are in use:
//!
//! - **`token`** (today's transformers with `num_items_in_batch`, TRL, and this
//!   crate's default): `L = Σ nll_k / Σ n_k`, every target token of the step
//!   weighted alike;
//! - **`micro-batch`** (transformers up to 4.45, among them 4.34.1 that the paper's
//!   `reproduce` branch pins): each micro-batch's mean `nll_k / n_k`, divided by
//!   `gradient_accumulation_steps` and summed over the step,
//!   `L = (1/K) Σ nll_k / n_k` with `K = grad_accum`; a token of a short micro-batch
//!   weighs more than one of a long micro-batch.
//!
//! Both are linear in the `nll_k`, so each micro-batch's loss and gradient are
//! multiplied by its factor from [`LossNormalization::scales`] and summed.
//!
//! ```
//! use sdft_train::loss::LossNormalization;
//! // Two micro-batches (grad_accum 2) with 10 and 30 target tokens and summed
//! // NLLs 5 and 6: per token 11 / 40 = 0.275; per micro-batch (0.5 + 0.2) / 2 = 0.35.
//! let nll = [5.0, 6.0];
//! let loss = |m: LossNormalization| -> f64 {
//!     m.scales(&[10, 30], 2).iter().zip(nll).map(|(s, l)| s * l).sum()
//! };
//! assert!((loss(LossNormalization::Token) - 0.275).abs() < 1e-12);
//! assert!((loss(LossNormalization::MicroBatch) - 0.35).abs() < 1e-12);
//! ```

use serde::{Deserialize, Serialize};

/// See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossNormalization {
    /// Over all target tokens of the optimizer step (the default).
    #[default]
    Token,
    /// Each micro-batch's mean, averaged over `grad_accum` (transformers 4.34.1).
    #[serde(alias = "micro_batch")]
    MicroBatch,
}

impl LossNormalization {
    /// `token` or `micro-batch`.
    pub fn as_str(self) -> &'static str {
        match self {
            LossNormalization::Token => "token",
            LossNormalization::MicroBatch => "micro-batch",
        }
    }

    /// The factor each micro-batch's summed NLL (and its gradient) is multiplied
    /// by, for micro-batches with `targets[k]` target tokens in a step of
    /// `grad_accum` micro-batches. A micro-batch without target tokens adds
    /// nothing (factor 0; transformers would divide by zero there).
    pub fn scales(self, targets: &[usize], grad_accum: usize) -> Vec<f64> {
        match self {
            LossNormalization::Token => {
                let total: usize = targets.iter().sum();
                let s = if total == 0 { 0.0 } else { 1.0 / total as f64 };
                vec![s; targets.len()]
            }
            LossNormalization::MicroBatch => targets
                .iter()
                .map(|&n| {
                    if n == 0 {
                        0.0
                    } else {
                        1.0 / (grad_accum.max(1) as f64 * n as f64)
                    }
                })
                .collect(),
        }
    }
}

crate::names::named_value!(LossNormalization, "loss_normalization");

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-computed step: grad_accum 4, the last micro-batch without targets.
    #[test]
    fn hand_computed_factors() {
        let t = LossNormalization::Token.scales(&[2, 4, 8, 0], 4);
        assert_eq!(t, vec![1.0 / 14.0; 4]);
        let m = LossNormalization::MicroBatch.scales(&[2, 4, 8, 0], 4);
        assert_eq!(m, vec![1.0 / 8.0, 1.0 / 16.0, 1.0 / 32.0, 0.0]);
        // nll 1, 2, 4 per micro-batch (0.5 per token everywhere): both give 0.5
        // per token on a step whose micro-batches are all full...
        let nll = [1.0, 2.0, 4.0, 0.0];
        let dot = |s: &[f64]| s.iter().zip(nll).map(|(a, b)| a * b).sum::<f64>();
        assert!((dot(&t) - 0.5).abs() < 1e-12);
        // ...while micro-batch averaging divides by grad_accum = 4, not by the 3
        // micro-batches that had targets: 3 * 0.5 / 4.
        assert!((dot(&m) - 0.375).abs() < 1e-12);
        assert_eq!(
            "micro-batch".parse::<LossNormalization>().unwrap(),
            LossNormalization::MicroBatch
        );
        assert!("mean".parse::<LossNormalization>().is_err());
    }
}
