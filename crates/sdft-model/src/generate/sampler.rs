//! Turning one row of logits into the next token, HF-style: repetition penalty,
//! then temperature, top-k, top-p, and a draw from the row's own random stream.

use sdft_core::rng::SplitMix64;
use sdft_core::SamplingParams;

/// HF's `RepetitionPenaltyLogitsProcessor`: for every token already in the sequence,
/// a positive logit is divided by `penalty`, a negative one multiplied.
pub fn apply_repetition_penalty(logits: &mut [f32], seen: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut done = std::collections::HashSet::with_capacity(seen.len());
    for &t in seen {
        if let Some(l) = logits.get_mut(t as usize) {
            if done.insert(t) {
                *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
            }
        }
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Picks the next token. `seen` is the prompt and everything generated so far (for
/// the repetition penalty). Greedy when `params.temperature == 0`.
pub fn sample(
    logits: &mut [f32],
    seen: &[u32],
    params: &SamplingParams,
    rng: &mut SplitMix64,
) -> u32 {
    apply_repetition_penalty(logits, seen, params.repetition_penalty);
    if params.is_greedy() {
        return argmax(logits);
    }
    let t = params.temperature;
    // Candidates sorted by logit, best first; top-k cuts the list.
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    let k = if params.top_k == 0 {
        logits.len()
    } else {
        params.top_k.min(logits.len())
    };
    if k < logits.len() {
        idx.select_nth_unstable_by(k - 1, |a, b| {
            logits[*b as usize].total_cmp(&logits[*a as usize])
        });
        idx.truncate(k);
    }
    idx.sort_by(|a, b| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    });
    let max = logits[idx[0] as usize] / t;
    let weights: Vec<f64> = idx
        .iter()
        .map(|i| ((logits[*i as usize] / t - max) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    // Top-p: keep the smallest prefix whose probability reaches top_p (HF keeps at
    // least one token).
    let mut keep = weights.len();
    if params.top_p < 1.0 {
        let mut cum = 0.0;
        for (n, w) in weights.iter().enumerate() {
            cum += w / total;
            if cum >= params.top_p as f64 {
                keep = n + 1;
                break;
            }
        }
    }
    let kept_total: f64 = weights[..keep].iter().sum();
    let mut u = rng.next_f64() * kept_total;
    for (n, w) in weights[..keep].iter().enumerate() {
        if u < *w {
            return idx[n];
        }
        u -= w;
    }
    idx[keep - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_penalty_topk_topp() {
        let p = SamplingParams::greedy();
        let mut rng = SplitMix64::for_row(0, "a");
        assert_eq!(sample(&mut [0.1, 3.0, 2.0], &[], &p, &mut rng), 1);
        // Penalty 4 on token 1: 3.0 / 4 = 0.75 < 2.0.
        let p = SamplingParams::greedy().with_repetition_penalty(4.0);
        assert_eq!(sample(&mut [0.1, 3.0, 2.0], &[1, 1], &p, &mut rng), 2);
        let mut l = [-1.0f32, 2.0];
        apply_repetition_penalty(&mut l, &[0, 1], 2.0);
        assert_eq!(l, [-2.0, 1.0]);
        // top_k = 1 is greedy whatever the temperature.
        let p = SamplingParams::paper_default().with_top_k(1);
        for _ in 0..20 {
            assert_eq!(sample(&mut [0.0, 1.0, 0.5], &[], &p, &mut rng), 1);
        }
        // top_p keeps the smallest set reaching p: with probabilities ~(0.67, 0.24,
        // 0.09) and p = 0.7, only the first two can be drawn.
        let p = SamplingParams::paper_default()
            .with_temperature(1.0)
            .with_top_k(0)
            .with_top_p(0.7);
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[sample(&mut [2.0, 1.0, 0.0], &[], &p, &mut rng) as usize] += 1;
        }
        assert_eq!(counts[2], 0);
        let share = counts[0] as f64 / 3000.0;
        assert!((share - 0.7311).abs() < 0.03, "share {share}");
    }
}
