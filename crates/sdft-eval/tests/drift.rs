//! The drift benchmark over fake models whose distributions are known in closed
//! form: the per-token KL divergence, its ratio-estimator standard error and
//! top-1 agreement equal hand-computed values; the seed's responses resume from
//! `drift.generations.jsonl`; a model compared with itself drifts by exactly 0.

use sdft_core::{
    Completion, Distributions, FinishReason, GenerationRequest, Generator, SamplingParams,
    ScoreRequest,
};
use sdft_eval::drift::{ratio_metric, run_drift};
use sdft_eval::harness::{EvalOptions, NoProgress};

/// Answers every instruction with `words` words; its distribution over a
/// 2-token vocabulary is `(p, 1 - p)` at every position, one position per word.
struct Fake {
    p: f32,
    words: usize,
    generated: usize,
}

impl Generator for Fake {
    fn generate_each(
        &mut self,
        r: &[GenerationRequest],
        _: &SamplingParams,
        done: &mut dyn FnMut(usize, &Completion),
    ) -> sdft_core::Result<Vec<Completion>> {
        self.generated += r.len();
        let out: Vec<Completion> = r
            .iter()
            .enumerate()
            .map(|(i, _)| {
                // Responses of 1, 2, 3, ... words.
                let n = 1 + (i % self.words);
                Completion {
                    text: vec!["w"; n].join(" "),
                    tokens: n,
                    finish_reason: FinishReason::Eos,
                }
            })
            .collect();
        out.iter().enumerate().for_each(|(i, c)| done(i, c));
        Ok(out)
    }
}

impl Distributions for Fake {
    fn next_token_logprobs(&mut self, r: &ScoreRequest) -> sdft_core::Result<Vec<Vec<f32>>> {
        let n = r.continuation.text().split_whitespace().count();
        Ok(vec![vec![self.p.ln(), (1.0 - self.p).ln()]; n])
    }
}

fn data(dir: &std::path::Path) {
    let rows: Vec<serde_json::Value> = (0..6)
        .map(|i| serde_json::json!({"instruction": format!("Tell me fact {i}."), "output": "x", "generator": "ref", "dataset": "d"}))
        .collect();
    std::fs::write(
        dir.join("alpaca_eval.json"),
        serde_json::to_vec(&rows).unwrap(),
    )
    .unwrap();
}

#[test]
fn drift_is_the_per_token_kl_from_seed_to_tuned() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let mut opts = EvalOptions::new(dir.path().join("run"), dir.path());
    opts.limit = Some(6);
    opts.chunk = 2;
    let mut seed = Fake {
        p: 0.5,
        words: 3,
        generated: 0,
    };
    let mut tuned = Fake {
        p: 0.8,
        words: 3,
        generated: 0,
    };
    let r = run_drift(&mut seed, Some(&mut tuned), &opts, &mut NoProgress).unwrap();
    assert_eq!(
        (seed.generated, tuned.generated),
        (6, 0),
        "the seed answers"
    );
    // KL((.5,.5) || (.8,.2)) = .5 ln(.5/.8) + .5 ln(.5/.2) at every position.
    let per = 0.5 * (0.5f64 / 0.8).ln() + 0.5 * (0.5f64 / 0.2).ln();
    let kl = r.metrics["kl"];
    assert!((kl.value - per).abs() < 1e-6, "{kl:?} vs {per}");
    // Every response sits on the ratio, so its standard error is 0.
    assert!(kl.stderr < 1e-6 && kl.n == 6, "{kl:?}");
    assert!((r.metrics["kl_response_mean"].value - per).abs() < 1e-6);
    // argmax: seed ties (index 0), tuned 0: all agree.
    assert!((r.metrics["top1_agreement"].value - 1.0).abs() < 1e-12);
    assert_eq!(
        (r.family.as_str(), r.primary.as_deref()),
        ("drift", Some("kl"))
    );
    // The seed's greedy responses are resumed, not regenerated.
    let mut again = Fake {
        p: 0.5,
        words: 3,
        generated: 0,
    };
    let r2 = run_drift(&mut again, Some(&mut tuned), &opts, &mut NoProgress).unwrap();
    assert_eq!((again.generated, r2.generated), (0, 0));
    assert_eq!(r2.metrics, r.metrics);
    // A model compared with itself.
    let mut own = opts.clone();
    own.run_dir = dir.path().join("seed");
    let r = run_drift(&mut seed, None, &own, &mut NoProgress).unwrap();
    assert_eq!(r.metrics["kl"].value, 0.0);
}

#[test]
fn ratio_standard_error_by_hand() {
    // Sums (1, 0, 2) over (1, 1, 2) tokens: ratio 3/4; residuals 1 - .75 = .25,
    // 0 - .75 = -.75, 2 - 1.5 = .5; sum of squares .875; n(n-1) = 6;
    // mean tokens 4/3: se = sqrt(.875 / 6) / (4/3).
    let m = ratio_metric(&[(1.0, 1), (0.0, 1), (2.0, 2)]);
    assert!((m.value - 0.75).abs() < 1e-12);
    let want = (0.875f64 / 6.0).sqrt() / (4.0 / 3.0);
    assert!((m.stderr - want).abs() < 1e-12, "{} vs {want}", m.stderr);
}

#[test]
fn an_adapter_run_takes_the_seed_runs_responses_and_refuses_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    let mut seed_opts = EvalOptions::new(dir.path().join("eval-seed"), dir.path());
    seed_opts.limit = Some(6);
    seed_opts.model.sha256 = Some("seed".into());
    let mut seed = Fake {
        p: 0.5,
        words: 3,
        generated: 0,
    };
    run_drift(&mut seed, None, &seed_opts, &mut NoProgress).unwrap();
    assert_eq!(seed.generated, 6);

    // An adapter of that seed: its drift reuses eval-seed's responses.
    let mut opts = seed_opts.clone();
    opts.run_dir = dir.path().join("eval-vanilla");
    opts.model.adapter_sha256 = Some("adapter".into());
    opts.drift_seed_run = Some(seed_opts.run_dir.clone());
    let mut tuned = Fake {
        p: 0.8,
        words: 3,
        generated: 0,
    };
    let mut fresh_seed = Fake {
        p: 0.5,
        words: 3,
        generated: 0,
    };
    let r = run_drift(&mut fresh_seed, Some(&mut tuned), &opts, &mut NoProgress).unwrap();
    assert_eq!(
        (fresh_seed.generated, r.generated),
        (0, 0),
        "nothing generated"
    );
    let per = 0.5 * (0.5f64 / 0.8).ln() + 0.5 * (0.5f64 / 0.2).ln();
    assert!((r.metrics["kl"].value - per).abs() < 1e-6);
    assert_eq!(r.metrics["kl"].n, 6);
    let recorded = std::fs::read_to_string(opts.run_dir.join("drift.settings.json")).unwrap();
    assert!(recorded.contains("seed_responses_sha256"), "{recorded}");

    // Another seed model, or another limit, is refused, naming the setting.
    let mut other = opts.clone();
    other.run_dir = dir.path().join("eval-other");
    other.model.sha256 = Some("another seed".into());
    let e = run_drift(&mut fresh_seed, Some(&mut tuned), &other, &mut NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model_sha256") && e.contains("drift.settings.json"),
        "{e}"
    );
    let mut fewer = opts.clone();
    fewer.run_dir = dir.path().join("eval-fewer");
    fewer.limit = Some(4);
    let e = run_drift(&mut fresh_seed, Some(&mut tuned), &fewer, &mut NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("limit"), "{e}");

    // A seed run that stopped before its last response names what is missing.
    let log = seed_opts.run_dir.join("drift.generations.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let first_five: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, first_five).unwrap();
    let mut cut = opts.clone();
    cut.run_dir = dir.path().join("eval-cut");
    let e = run_drift(&mut fresh_seed, Some(&mut tuned), &cut, &mut NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds 5 of 6"), "{e}");
    // A run directory without drift settings.
    let mut none = opts.clone();
    none.run_dir = dir.path().join("eval-none");
    none.drift_seed_run = Some(dir.path().join("nowhere"));
    let e = run_drift(&mut fresh_seed, Some(&mut tuned), &none, &mut NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no drift settings"), "{e}");
}
