//! Task fit (`gsm8k_ll`): each held-out row's reference answer is scored after
//! the task's own prompt; the metrics are the token-weighted and row-weighted
//! mean log-probabilities, worked here over a scorer with known scores.

use sdft_core::{Score, ScoreRequest, Scorer};
use sdft_eval::bench::Benchmark;
use sdft_eval::harness::{run_multiple_choice, EvalOptions, NoProgress};

/// Scores a continuation at -0.5 nats per word and records what it saw.
#[derive(Default)]
struct Words(Vec<ScoreRequest>);

impl Scorer for Words {
    fn score(&mut self, r: &[ScoreRequest]) -> sdft_core::Result<Vec<Score>> {
        self.0.extend_from_slice(r);
        Ok(r.iter()
            .map(|q| {
                let n = q.continuation.text().split_whitespace().count();
                Score {
                    sum_logprob: -0.5 * n as f64 - if n == 2 { 1.0 } else { 0.0 },
                    tokens: n,
                }
            })
            .collect())
    }
}

#[test]
fn reference_answers_are_scored_after_the_task_prompt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gsm8k_test.json"),
        r#"[{"question": "What is 2 + 2?", "answer": "2 + 2 = 4\nThe answer is 4."},
            {"question": "What is 1 + 1?", "answer": "The answer."}]"#,
    )
    .unwrap();
    let opts = EvalOptions::new(dir.path().join("run"), dir.path());
    let bench = Benchmark::parse_list("gsm8k_ll").unwrap().remove(0);
    assert_eq!(bench.name(), "gsm8k_ll");
    let mut s = Words::default();
    let r = run_multiple_choice(&mut s, &bench, &opts, &mut NoProgress).unwrap();
    // The prompt is the gsm8k benchmark's own (paper format here), the
    // continuation the reference answer.
    assert!(s.0[0].prompt.text().contains("What is 2 + 2?"));
    assert_eq!(s.0[0].continuation.text(), "2 + 2 = 4\nThe answer is 4.");
    // Row 1: 9 words at -0.5 = -4.5; row 2: 2 words, -2.0. Token-weighted:
    // -6.5 / 11; row-weighted: (-0.5 + -1.0) / 2.
    assert!((r.metrics["logprob"].value - (-6.5 / 11.0)).abs() < 1e-12);
    assert!((r.metrics["row_mean_logprob"].value - (-0.75)).abs() < 1e-12);
    assert_eq!(
        (r.family.as_str(), r.primary.as_deref()),
        ("task fit", Some("logprob"))
    );
    assert!(dir.path().join("run/gsm8k_ll.parquet").is_file());
}
