//! Drift: how far a tuned model's next-token distribution has moved from its
//! seed's, on the seed's own responses. This is the distribution shift SDFT
//! claims to limit, measured directly; unlike a benchmark score it registers at
//! any model size.
//!
//! The seed answers the first N instructions of AlpacaEval (`alpaca_eval.json`,
//! the `alpaca` preset in the run's prompt format) greedily; then for every
//! token `t` of each response both models give their whole next-token
//! distribution, and the drift is
//!
//! `KL(seed ‖ tuned)_t = Σ_v p_seed(v | ·) · (log p_seed(v | ·) − log p_tuned(v | ·))`,
//!
//! in nats. The reported `kl` is the mean over all response tokens (a ratio of
//! sums), with the standard error of a ratio estimator over responses (the
//! responses are the independent units, not the tokens):
//! `se = sqrt(Σ_i (K_i − kl·T_i)² / (n (n − 1))) / mean(T)` for response sums
//! `K_i` over `T_i` tokens. `kl_response_mean` weighs each response equally, and
//! `top1_agreement` is the fraction of positions where both models' most
//! likely token is the same.

use std::collections::BTreeMap;
use std::time::Instant;

use sdft_core::{Distributions, Generator, SamplingParams, ScoreRequest};

use crate::bench::{self, Benchmark};
use crate::results::{BenchResult, RowRecord};
use crate::run::{bench_settings, finish, generate_items, reuse_bench};
use crate::run::{EvalOptions, Progress};
use crate::{Error, Metric, Result};

/// Instructions the seed answers when no `--limit` is given.
pub const DEFAULT_LIMIT: usize = 64;

/// `KL(p ‖ q)` of two distributions given as log-probabilities over the same
/// vocabulary, in nats (terms with `p = 0` contribute nothing).
///
/// ```
/// use sdft_eval::drift::kl;
/// let p = [0.5f32.ln(), 0.5f32.ln()];
/// let q = [0.25f32.ln(), 0.75f32.ln()];
/// // 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln 2 + 0.5 ln(2/3)
/// let want = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
/// assert!((kl(&p, &q) - want).abs() < 1e-6);
/// assert_eq!(kl(&p, &p), 0.0);
/// ```
pub fn kl(log_p: &[f32], log_q: &[f32]) -> f64 {
    log_p
        .iter()
        .zip(log_q)
        .map(|(&lp, &lq)| {
            if lp == f32::NEG_INFINITY {
                0.0
            } else {
                (lp as f64).exp() * (lp as f64 - lq as f64)
            }
        })
        .sum::<f64>()
        .max(0.0)
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best
}

/// One response's drift: its token count, the sum of per-token KL and how many
/// positions agree on the most likely token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponseDrift {
    pub tokens: usize,
    pub kl_sum: f64,
    pub top1_agree: usize,
}

/// The per-token drift of one response from both models' distributions.
pub fn response_drift(seed: &[Vec<f32>], tuned: &[Vec<f32>]) -> ResponseDrift {
    let mut d = ResponseDrift {
        tokens: seed.len().min(tuned.len()),
        kl_sum: 0.0,
        top1_agree: 0,
    };
    for (p, q) in seed.iter().zip(tuned) {
        d.kl_sum += kl(p, q);
        d.top1_agree += usize::from(argmax(p) == argmax(q));
    }
    d
}

/// The token-weighted mean of `sum_i / tokens_i` over responses, with the
/// standard error of the ratio estimator (see the module docs).
///
/// ```
/// use sdft_eval::drift::ratio_metric;
/// // Sums 2 and 6 over 1 and 3 tokens: ratio 8 / 4 = 2, and every response
/// // sits exactly on it, so the standard error is 0.
/// let m = ratio_metric(&[(2.0, 1), (6.0, 3)]);
/// assert_eq!((m.value, m.stderr, m.n), (2.0, 0.0, 2));
/// ```
pub fn ratio_metric(responses: &[(f64, usize)]) -> Metric {
    let n = responses.len();
    let total: usize = responses.iter().map(|r| r.1).sum();
    if n == 0 || total == 0 {
        return Metric {
            value: 0.0,
            stderr: 0.0,
            n,
        };
    }
    let r = responses.iter().map(|x| x.0).sum::<f64>() / total as f64;
    let stderr = if n < 2 {
        0.0
    } else {
        let mean_t = total as f64 / n as f64;
        let ss: f64 = responses
            .iter()
            .map(|(k, t)| (k - r * *t as f64).powi(2))
            .sum();
        (ss / (n * (n - 1)) as f64).sqrt() / mean_t
    };
    Metric {
        value: r,
        stderr,
        n,
    }
}

/// The drift metrics of a set of responses.
pub fn metrics(drifts: &[ResponseDrift]) -> BTreeMap<String, Metric> {
    let kl: Vec<(f64, usize)> = drifts.iter().map(|d| (d.kl_sum, d.tokens)).collect();
    let agree: Vec<(f64, usize)> = drifts
        .iter()
        .map(|d| (d.top1_agree as f64, d.tokens))
        .collect();
    let per_response: Vec<f64> = drifts
        .iter()
        .filter(|d| d.tokens > 0)
        .map(|d| d.kl_sum / d.tokens as f64)
        .collect();
    BTreeMap::from([
        ("kl".to_string(), ratio_metric(&kl)),
        (
            "kl_response_mean".to_string(),
            Metric::from_scores(&per_response),
        ),
        ("top1_agreement".to_string(), ratio_metric(&agree)),
    ])
}

/// Runs the drift benchmark and records it in `RUN_DIR/results.json` (family
/// `drift`, primary `kl`; lower is closer to the seed). `seed` generates the
/// responses (resumable, `drift.generations.jsonl`) and gives the reference
/// distributions; `tuned` is the evaluated model, or `None` when the evaluated
/// model is the seed itself (its drift is then computed against itself).
pub fn run_drift(
    seed: &mut dyn SeedModel,
    mut tuned: Option<&mut dyn Distributions>,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<BenchResult> {
    let start = Instant::now();
    let bench = Benchmark::Drift;
    let name = bench.name();
    let path = bench.data_path(&opts.data_dir, &opts.humaneval_path);
    let data_sha256 =
        sdft_core::provenance::sha256_file(&path).map_err(|e| Error::file(&path, e.to_string()))?;
    let template = sdft_data::Template::preset(bench.template())
        .ok_or_else(|| Error::file(&path, "template preset `alpaca` is missing"))?
        .with_system_message(opts.system_message)
        .with_prompt_format(opts.prompt_format, opts.chat_format.clone())?;
    let limit = Some(opts.limit.unwrap_or(DEFAULT_LIMIT));
    let prepared = bench::prepare_with(&Benchmark::AlpacaEval, &path, limit, 1, template)?;
    let mut params = SamplingParams::greedy();
    params.max_new_tokens = opts.sampling.max_new_tokens;
    params.stop = opts.sampling.stop.clone();
    let params = prepared.template.sampling(&params);
    std::fs::create_dir_all(&opts.run_dir).map_err(|e| Error::io(&opts.run_dir, e))?;
    let settings = bench_settings(&bench, opts, &params, &data_sha256, 1)
        .with("limit", limit)
        .with(
            "prompt_format",
            prepared.template.prompt_format().to_string(),
        )
        .with("template_hash", prepared.template.template_hash());
    let ids: Vec<&str> = prepared.items.iter().map(|i| i.id.as_str()).collect();
    let shared = match &opts.drift_seed_run {
        Some(dir) => Some(seed_responses(dir, &settings, &ids)?),
        None => None,
    };
    let settings = match &shared {
        Some((_, sha)) => settings.with("seed_responses_sha256", sha),
        None => settings,
    };
    reuse_bench(opts, &name, &settings)?;
    let (outputs, generated) = match shared {
        Some((outputs, _)) => (outputs, 0),
        None => generate_items(
            seed.as_generator(),
            &name,
            &prepared.items,
            &params,
            opts,
            progress,
        )?,
    };
    progress.start(&name, "compare", outputs.len(), 0);
    let mut drifts = Vec::with_capacity(outputs.len());
    let mut rows = Vec::with_capacity(outputs.len());
    for (i, (item, out)) in prepared.items.iter().zip(&outputs).enumerate() {
        let req = ScoreRequest {
            prompt: item.prompt.clone(),
            continuation: sdft_core::Prompt::raw(out.clone()),
        };
        let model_err = |e| Error::Model {
            benchmark: name.clone(),
            source: e,
        };
        let p = seed
            .as_distributions()
            .next_token_logprobs(&req)
            .map_err(model_err)?;
        let d = match tuned.as_deref_mut() {
            Some(t) => {
                let q = t.next_token_logprobs(&req).map_err(model_err)?;
                response_drift(&p, &q)
            }
            None => response_drift(&p, &p),
        };
        let per_token = if d.tokens > 0 {
            d.kl_sum / d.tokens as f64
        } else {
            0.0
        };
        rows.push(RowRecord {
            id: item.id.clone(),
            prompt: prepared.template.display(&item.prompt),
            output: out.clone(),
            extracted: String::new(),
            score: per_token,
            scores: [
                ("kl".to_string(), per_token),
                ("kl_sum".to_string(), d.kl_sum),
                ("tokens".to_string(), d.tokens as f64),
                ("top1_agree".to_string(), d.top1_agree as f64),
            ]
            .into(),
        });
        drifts.push(d);
        progress.set(i + 1);
    }
    progress.finish();
    let mut config = crate::run::config(&bench, &prepared.template, opts, &params, 1);
    config.template = prepared.template.name.clone();
    config.limit = limit;
    let metrics = metrics(&drifts);
    let data = (path.as_path(), data_sha256);
    finish(&bench, opts, rows, metrics, config, data, generated, start)
}

/// The seed's responses from an earlier run of the seed itself (`dir`, its
/// `drift.generations.jsonl`), so that evaluating several adapters of one seed
/// generates them once. The seed run must have recorded the settings this run
/// would give the seed (`settings` with no adapter) and hold a response for every
/// id; returns the responses in `ids` order and the file's SHA-256 (recorded in
/// this run's settings, so other responses are refused on a rerun).
pub fn seed_responses(
    dir: &std::path::Path,
    settings: &sdft_core::provenance::Settings,
    ids: &[&str],
) -> Result<(Vec<String>, String)> {
    let name = Benchmark::Drift.name();
    let settings_path = dir.join(format!("{name}.settings.json"));
    let log = dir.join(format!("{name}.generations.jsonl"));
    let recorded = sdft_core::provenance::Settings::read(&settings_path)?.ok_or_else(|| {
        Error::file(
            &settings_path,
            "no drift settings here: --drift-seed-run expects the run directory of an `eval run` of the seed model with the drift benchmark",
        )
    })?;
    let want = settings.clone().with("adapter_sha256", None::<String>);
    let diffs = recorded.diff(&want);
    if !diffs.is_empty() {
        let list: Vec<String> = diffs.iter().map(ToString::to_string).collect();
        return Err(Error::file(
            &settings_path,
            format!(
                "the seed run's drift responses were made with other settings than this run's seed: {}",
                list.join("; ")
            ),
        ));
    }
    let text = std::fs::read_to_string(&log).map_err(|e| Error::io(&log, e))?;
    let mut by_id = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::row(&log, i + 1, "a JSON object", e.to_string()))?;
        match (v["id"].as_str(), v["output"].as_str()) {
            (Some(id), Some(out)) => {
                by_id.insert(id.to_string(), out.to_string());
            }
            _ => {
                let found: String = line.chars().take(80).collect();
                return Err(Error::row(&log, i + 1, "string `id` and `output`", found));
            }
        }
    }
    let present = ids.iter().filter(|id| by_id.contains_key(**id)).count();
    let mut outputs = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(o) = by_id.remove(*id) else {
            return Err(Error::file(
                &log,
                format!(
                    "the seed run has no response for `{id}` (it holds {present} of {}): finish that run first",
                    ids.len()
                ),
            ));
        };
        outputs.push(o);
    }
    let sha =
        sdft_core::provenance::sha256_file(&log).map_err(|e| Error::file(&log, e.to_string()))?;
    Ok((outputs, sha))
}

/// The seed model of a drift run: it generates the responses and gives the
/// reference distributions.
pub trait SeedModel {
    fn as_generator(&mut self) -> &mut dyn Generator;
    fn as_distributions(&mut self) -> &mut dyn Distributions;
}

impl<T: Generator + Distributions> SeedModel for T {
    fn as_generator(&mut self) -> &mut dyn Generator {
        self
    }

    fn as_distributions(&mut self) -> &mut dyn Distributions {
        self
    }
}
