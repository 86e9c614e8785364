//! The distribution gap, measured: how likely the seed model finds the original
//! responses versus the chosen (distilled) ones under the training template.

use std::collections::BTreeMap;

use sdft_core::{Score, ScoreRequest, Scorer};
use sdft_data::Template;
use serde::{Deserialize, Serialize};

use crate::row::DistilledRow;
use crate::Result;

/// Log-likelihood of a set of responses: token-weighted mean log-probability per
/// token (natural log), its perplexity `exp(-mean)`, and the mean of per-row means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Likelihood {
    pub rows: usize,
    pub tokens: usize,
    pub sum_logprob: f64,
    pub mean_logprob: f64,
    pub perplexity: f64,
    pub mean_of_row_means: f64,
}

impl Likelihood {
    pub fn of(scores: &[Score]) -> Likelihood {
        let tokens: usize = scores.iter().map(|s| s.tokens).sum();
        let sum: f64 = scores.iter().map(|s| s.sum_logprob).sum();
        let mean = if tokens == 0 {
            0.0
        } else {
            sum / tokens as f64
        };
        let row_means = if scores.is_empty() {
            0.0
        } else {
            scores.iter().map(Score::mean_logprob).sum::<f64>() / scores.len() as f64
        };
        Likelihood {
            rows: scores.len(),
            tokens,
            sum_logprob: sum,
            mean_logprob: mean,
            perplexity: (-mean).exp(),
            mean_of_row_means: row_means,
        }
    }
}

/// The gap over all rows and over the rows whose rewrite was kept (where the two
/// responses differ). `difference` is chosen minus original mean log-probability:
/// positive means the chosen responses are more likely under the seed model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapReport {
    pub template: String,
    pub original: Likelihood,
    pub chosen: Likelihood,
    pub difference: f64,
    pub kept_original: Likelihood,
    pub kept_chosen: Likelihood,
    pub kept_difference: f64,
}

impl GapReport {
    /// A Markdown table of the gap (for reports).
    pub fn markdown(&self) -> String {
        let row = |name: &str, l: &Likelihood| {
            format!(
                "| {name} | {:.4} | {:.2} | {} |\n",
                l.mean_logprob, l.perplexity, l.tokens
            )
        };
        format!(
            "Distribution gap under the training template `{}` (seed model, mean \
             log-likelihood per token; higher is more likely):\n\n\
             | responses | mean log-likelihood | perplexity | tokens |\n| --- | ---: | ---: | ---: |\n\
             {}{}\nDifference (chosen - original): {:+.4} nats/token over all rows; {:+.4} \
             over the {} rows whose rewrite was kept.\n",
            self.template,
            row("original", &self.original),
            row("chosen (SDFT data)", &self.chosen),
            self.difference,
            self.kept_difference,
            self.kept_original.rows
        )
    }
}

/// Scores every row's original and chosen response (the final turn, after its
/// prompt and earlier turns) under `template`, in batches of `batch` requests,
/// calling `progress(done, total)` after each batch. A row whose rewrite was not kept
/// has identical responses and is scored once.
pub fn measure_gap(
    scorer: &mut dyn Scorer,
    template: &Template,
    rows: &[DistilledRow],
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GapReport> {
    // Requests: every original, then the kept rows' rewrites.
    let mut requests: Vec<ScoreRequest> = Vec::with_capacity(rows.len() * 2);
    let mut kept_idx: BTreeMap<usize, usize> = BTreeMap::new();
    for r in rows {
        let ex = r.to_example();
        requests.push(ScoreRequest {
            prompt: template.render_prompt(&ex)?,
            continuation: template.render_response(&r.original)?,
        });
    }
    for (i, r) in rows.iter().enumerate() {
        if r.kept {
            kept_idx.insert(i, requests.len());
            requests.push(ScoreRequest {
                prompt: template.render_prompt(&r.to_example())?,
                continuation: template.render_response(&r.response)?,
            });
        }
    }
    let mut scores: Vec<Score> = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(batch.max(1)) {
        scores.extend(scorer.score(chunk)?);
        progress(scores.len(), requests.len());
    }
    let original: Vec<Score> = scores[..rows.len()].to_vec();
    let chosen: Vec<Score> = (0..rows.len())
        .map(|i| kept_idx.get(&i).map(|j| scores[*j]).unwrap_or(scores[i]))
        .collect();
    let kept_original: Vec<Score> = kept_idx.keys().map(|i| scores[*i]).collect();
    let kept_chosen: Vec<Score> = kept_idx.values().map(|j| scores[*j]).collect();
    let (o, c) = (Likelihood::of(&original), Likelihood::of(&chosen));
    let (ko, kc) = (Likelihood::of(&kept_original), Likelihood::of(&kept_chosen));
    Ok(GapReport {
        template: template.name.clone(),
        difference: c.mean_logprob - o.mean_logprob,
        kept_difference: kc.mean_logprob - ko.mean_logprob,
        original: o,
        chosen: c,
        kept_original: ko,
        kept_chosen: kc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn likelihood_is_token_weighted() {
        let s = [
            Score {
                sum_logprob: -2.0,
                tokens: 1,
            },
            Score {
                sum_logprob: -2.0,
                tokens: 4,
            },
        ];
        let l = Likelihood::of(&s);
        assert_eq!(l.tokens, 5);
        assert!((l.mean_logprob - (-0.8)).abs() < 1e-12);
        assert!((l.perplexity - 0.8f64.exp()).abs() < 1e-12);
        assert!((l.mean_of_row_means - (-1.25)).abs() < 1e-12);
        let e = Likelihood::of(&[]);
        assert_eq!((e.tokens, e.mean_logprob, e.perplexity), (0, 0.0, 1.0));
    }
}
