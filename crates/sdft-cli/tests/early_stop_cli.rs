//! Stopping a row where its score is decided gives the same scores as generating
//! it to its end: `sdft eval run` on real rows (SmolLM2, AdvBench raw and
//! HumanEval, greedy) both ways. Skipped (`sdft_assets::skip`) when the model, the
//! paper's data or HumanEval is absent.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The model, the paper's data and HumanEval, or `None` once the missing one is
/// recorded as a skip (`cached_model` and `cached` record theirs themselves).
fn inputs() -> Option<(String, PathBuf, PathBuf)> {
    let m = sdft_assets::cached_model(&sdft_assets::SMOLLM2_135M_INSTRUCT)?;
    let Some(d) = std::env::var_os("SDFT_SHARED")
        .map(|s| PathBuf::from(s).join("data/sdft"))
        .filter(|d| d.is_dir())
    else {
        sdft_assets::skip(
            "shared-data",
            "SDFT_SHARED is unset or lacks data/sdft (set SDFT_SHARED=../shared); the early-stop equality test did not run",
        );
        return None;
    };
    let h = sdft_assets::cached(sdft_assets::HUMANEVAL.rel)?;
    Some((m.display().to_string(), d, h))
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Per-row scores of a benchmark, by id.
fn scores(run: &Path, bench: &str) -> Vec<(String, f64)> {
    let rows = sdft_data::read_records(&run.join(format!("{bench}.parquet")), None).unwrap();
    let mut out: Vec<(String, f64)> = rows
        .rows
        .iter()
        .map(|r| {
            let r = r.as_ref().unwrap();
            (
                r["id"].as_str().unwrap().to_string(),
                r["score"].as_f64().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn stopping_where_the_score_is_decided_changes_no_score() {
    let Some((model, data, humaneval)) = inputs() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| -> PathBuf {
        let out = dir.path().join(name);
        let mut args = vec![
            "eval",
            "run",
            "--model",
            &model,
            "--benchmarks",
            "advbench_raw,humaneval",
            "--limits",
            "advbench_raw=24,humaneval=8",
            "--sampling",
            "greedy",
            "--max-new-tokens",
            "160",
            "--batch-size",
            "8",
            "--allow-code-execution",
            "--humaneval",
            s(&humaneval),
            "--data-dir",
            s(&data),
            "--output",
            s(&out),
        ];
        args.extend_from_slice(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_sdft"))
            .args(&args)
            .output()
            .expect("run sdft");
        assert!(
            o.status.success(),
            "sdft {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    };
    let early = run("early", &[]);
    let full = run("full", &["--full-generation"]);
    let mut cut = 0;
    let (mut tokens_early, mut tokens_full) = (0, 0);
    for bench in ["advbench_raw", "humaneval"] {
        assert_eq!(
            scores(&early, bench),
            scores(&full, bench),
            "{bench}: per-row scores differ between early stop and full generation"
        );
        let e = lines(&early.join(format!("{bench}.generations.jsonl")));
        let f = lines(&full.join(format!("{bench}.generations.jsonl")));
        for row in &e {
            let id = &row["id"];
            let whole = f.iter().find(|r| r["id"] == *id).unwrap();
            let (a, b) = (
                row["output"].as_str().unwrap(),
                whole["output"].as_str().unwrap(),
            );
            // Greedy: the early text is the start of the whole one.
            assert!(
                b.starts_with(a),
                "{bench} row {id}: {a:?} is not a prefix of {b:?}"
            );
            if let Some(m) = row["cut_after"].as_str() {
                cut += 1;
                assert_eq!(row["finish_reason"], "stop");
                assert!(
                    a.ends_with(m),
                    "{bench} row {id}: cut after {m:?} but ends {a:?}"
                );
                assert!(whole.get("cut_after").is_none());
            } else {
                assert_eq!(a, b, "{bench} row {id}: not cut, yet different");
            }
            tokens_early += row["tokens"].as_u64().unwrap();
            tokens_full += whole["tokens"].as_u64().unwrap();
        }
        // The settings record the patterns, so the two runs never mix.
        let settings =
            std::fs::read_to_string(early.join(format!("{bench}.settings.json"))).unwrap();
        assert!(settings.contains("stop_after"), "{settings}");
    }
    assert!(cut > 0, "no row was cut: the test shows nothing");
    assert!(
        tokens_early < tokens_full,
        "{tokens_early} tokens with early stop, {tokens_full} without"
    );
    eprintln!("early stop: {cut} rows cut, {tokens_early} tokens instead of {tokens_full}");
}
