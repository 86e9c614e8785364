//! Aggregates: a metric's value with its standard error, and the unbiased pass@k.

use serde::{Deserialize, Serialize};

/// A metric over `n` items: the mean of per-item scores and the standard error of
/// that mean, `sqrt(s^2 / n)` with the sample variance `s^2` (divisor `n - 1`), as
/// lm-evaluation-harness reports it. Values are fractions in [0, 1] for rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub value: f64,
    pub stderr: f64,
    pub n: usize,
}

impl Metric {
    /// Mean and standard error of per-item scores. No items give value 0 with n 0;
    /// one item gives stderr 0 (the sample variance is undefined; reported as 0).
    ///
    /// ```
    /// let m = sdft_eval::Metric::from_scores(&[1.0, 0.0, 1.0, 1.0]);
    /// assert_eq!(m.value, 0.75);
    /// // s^2 = (3 * 0.0625 + 0.5625) / 3 = 0.25; stderr = sqrt(0.25 / 4)
    /// assert!((m.stderr - 0.25).abs() < 1e-12);
    /// ```
    pub fn from_scores(scores: &[f64]) -> Metric {
        let n = scores.len();
        if n == 0 {
            return Metric {
                value: 0.0,
                stderr: 0.0,
                n: 0,
            };
        }
        let mean = scores.iter().sum::<f64>() / n as f64;
        let stderr = if n < 2 {
            0.0
        } else {
            let var = scores.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            (var / n as f64).sqrt()
        };
        Metric {
            value: mean,
            stderr,
            n,
        }
    }

    /// The value in percent (for tables).
    pub fn percent(&self) -> f64 {
        100.0 * self.value
    }
}

/// The unbiased pass@k estimator of Chen et al. (2021) for `n` samples of which `c`
/// passed: `1 - C(n-c, k) / C(n, k)`, computed in the numerically stable product
/// form `1 - prod_{i=n-c+1}^{n} (1 - k / i)`. It is 1 when `n - c < k`. Returns
/// `None` when `k` is 0, `k > n` or `c > n` (undefined).
///
/// ```
/// use sdft_eval::pass_at_k;
/// assert_eq!(pass_at_k(1, 1, 1), Some(1.0));
/// assert_eq!(pass_at_k(10, 0, 5), Some(0.0));
/// // 1 - C(8,1)/C(10,1) = 0.2
/// assert!((pass_at_k(10, 2, 1).unwrap() - 0.2).abs() < 1e-12);
/// assert_eq!(pass_at_k(5, 1, 6), None);
/// ```
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n || c > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    let prod: f64 = ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product();
    Some(1.0 - prod)
}

/// `pass@1`, `pass@10` and `pass@100` (those with `k <= samples`) over
/// problems given as `(samples n, correct c)`: each the mean of [`pass_at_k`]
/// over the problems, with its standard error.
pub fn pass_at_k_metrics<'a>(
    per_problem: impl Iterator<Item = &'a (usize, usize)> + Clone,
    samples: usize,
) -> Vec<(String, Metric)> {
    [1usize, 10, 100]
        .into_iter()
        .filter(|k| *k <= samples)
        .map(|k| {
            let v: Vec<f64> = per_problem
                .clone()
                .filter_map(|(n, c)| pass_at_k(*n, *c, k))
                .collect();
            (format!("pass@{k}"), Metric::from_scores(&v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binom(n: u64, k: u64) -> f64 {
        if k > n {
            return 0.0;
        }
        (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
    }

    #[test]
    fn pass_at_k_matches_the_combinatorial_form() {
        for n in 1..=20u64 {
            for c in 0..=n {
                for k in 1..=n {
                    let direct = 1.0 - binom(n - c, k) / binom(n, k);
                    let got = pass_at_k(n as usize, c as usize, k as usize).unwrap();
                    assert!((got - direct).abs() < 1e-9, "n={n} c={c} k={k}");
                }
            }
        }
        // Hand-computed: n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
        assert!((pass_at_k(5, 2, 2).unwrap() - 0.7).abs() < 1e-12);
        // Large n stays finite where binomials would overflow.
        let v = pass_at_k(1000, 10, 100).unwrap();
        assert!(v > 0.0 && v < 1.0);
        assert_eq!(pass_at_k(0, 0, 1), None);
        assert_eq!(pass_at_k(3, 4, 1), None);
        assert_eq!(pass_at_k(3, 1, 0), None);
    }

    #[test]
    fn stderr_is_the_sample_stderr_of_the_mean() {
        let m = Metric::from_scores(&[1.0, 0.5, 0.0]);
        assert_eq!(m.value, 0.5);
        // s^2 = (0.25 + 0 + 0.25) / 2 = 0.25; stderr = sqrt(0.25 / 3)
        assert!((m.stderr - (0.25f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(m.n, 3);
        let one = Metric::from_scores(&[1.0]);
        assert_eq!((one.value, one.stderr, one.n), (1.0, 0.0, 1));
        let none = Metric::from_scores(&[]);
        assert_eq!((none.value, none.stderr, none.n), (0.0, 0.0, 0));
    }
}
