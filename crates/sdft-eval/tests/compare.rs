//! Paired comparisons of two run directories: the bootstrap interval on inputs
//! whose resampling distribution is known exactly, the join by row id, and the
//! verdict sentences for a clear difference, no difference, and drift (where
//! lower is better).

use std::collections::BTreeMap;
use std::path::Path;

use sdft_eval::compare::{bootstrap_interval, paired, verdict, Paired};
use sdft_eval::report::Run;
use sdft_eval::results::{
    write_rows_parquet, BenchConfig, BenchResult, Hashes, ModelInfo, RowRecord, RunResults,
};
use sdft_eval::Metric;

#[test]
fn bootstrap_interval_of_known_resampling_distributions() {
    // Two rows, differences 0 and 1: a resample's mean is 0, 0.5 or 1 with
    // probability 1/4, 1/2, 1/4, so the 2.5th percentile is 0 and the 97.5th 1.
    assert_eq!(bootstrap_interval(&[0.0, 1.0], 10_000, 1), (0.0, 1.0));
    // Large n: the percentile interval of a mean is close to mean ± 1.96 se.
    let diffs: Vec<f64> = (0..400).map(|i| f64::from(u8::from(i % 4 == 0))).collect();
    let (lo, hi) = bootstrap_interval(&diffs, 10_000, 3);
    let se = (0.25f64 * 0.75 / 400.0).sqrt();
    assert!((lo - (0.25 - 1.96 * se)).abs() < 0.01, "{lo}");
    assert!((hi - (0.25 + 1.96 * se)).abs() < 0.01, "{hi}");
    // Seeded: the same interval again.
    assert_eq!(bootstrap_interval(&diffs, 10_000, 3), (lo, hi));
}

fn result(name: &str, family: &str, primary: &str, v: f64) -> BenchResult {
    BenchResult {
        benchmark: name.into(),
        family: family.into(),
        primary: Some(primary.into()),
        n: 4,
        metrics: BTreeMap::from([(
            primary.to_string(),
            Metric {
                value: v,
                stderr: 0.0,
                n: 4,
            },
        )]),
        config: BenchConfig {
            template: "t".into(),
            prompt_format: sdft_data::PromptFormat::Paper,
            template_hash: String::new(),
            sampling: Default::default(),
            limit: None,
            seed: 42,
            samples: 1,
            num_fewshot: None,
            system_message: Default::default(),
        },
        hashes: Hashes {
            data_path: "d".into(),
            data_sha256: "h".into(),
            model: ModelInfo::default(),
        },
        generated: 0,
        wall_secs: 1.0,
    }
}

/// A benchmark's name, family and per-row (id, score) pairs.
type BenchRows<'a> = (&'a str, &'a str, &'a [(&'a str, f64)]);

fn run(dir: &Path, name: &str, rows: &[BenchRows<'_>]) -> Run {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let mut benchmarks = Vec::new();
    for (bench, family, scores) in rows {
        let recs: Vec<RowRecord> = scores
            .iter()
            .map(|(id, s)| RowRecord {
                id: id.to_string(),
                prompt: String::new(),
                output: String::new(),
                extracted: String::new(),
                score: *s,
                scores: BTreeMap::new(),
            })
            .collect();
        write_rows_parquet(&d.join(format!("{bench}.parquet")), &recs).unwrap();
        let primary = if *family == "drift" { "kl" } else { "acc" };
        let mean = scores.iter().map(|x| x.1).sum::<f64>() / scores.len() as f64;
        benchmarks.push(result(bench, family, primary, mean));
    }
    Run {
        name: name.into(),
        dir: d,
        results: RunResults {
            benchmarks,
            ..Default::default()
        },
    }
}

#[test]
fn paired_rows_join_by_id_and_verdicts_follow_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let ones: Vec<(String, f64)> = (0..40).map(|i| (format!("r{i}"), 1.0)).collect();
    let zeros: Vec<(String, f64)> = (0..40).map(|i| (format!("r{i}"), 0.0)).collect();
    let ones: Vec<(&str, f64)> = ones.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    let zeros: Vec<(&str, f64)> = zeros.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    // "same": equal on every row but one of four, in both directions.
    let same_a: &[(&str, f64)] = &[("a", 1.0), ("b", 0.0), ("c", 1.0), ("d", 0.0)];
    let same_b: &[(&str, f64)] = &[("a", 0.0), ("b", 1.0), ("c", 1.0), ("d", 0.0), ("x", 1.0)];
    let drift_a: &[(&str, f64)] = &[("p", 0.02), ("q", 0.04), ("s", 0.03)];
    let drift_b: &[(&str, f64)] = &[("p", 0.01), ("q", 0.02), ("s", 0.015)];
    let a = run(
        tmp.path(),
        "vanilla",
        &[
            ("arc_easy", "knowledge", &zeros),
            ("piqa", "knowledge", same_a),
            ("drift", "drift", drift_a),
        ],
    );
    let b = run(
        tmp.path(),
        "sdft",
        &[
            ("arc_easy", "knowledge", &ones),
            ("piqa", "knowledge", same_b),
            ("drift", "drift", drift_b),
        ],
    );
    let rows = paired(&a, &b, 42).unwrap();
    let by: BTreeMap<&str, &Paired> = rows.iter().map(|p| (p.benchmark.as_str(), p)).collect();
    let arc = by["arc_easy"];
    assert_eq!((arc.n, arc.unmatched), (40, 0));
    assert_eq!((arc.diff, arc.lo, arc.hi), (1.0, 1.0, 1.0));
    assert_eq!(
        verdict(arc, "vanilla", "sdft"),
        "arc_easy: sdft scores higher than vanilla: sdft − vanilla = +100.0 points (95% CI +100.0 points to +100.0 points, n=40)."
    );
    let piqa = by["piqa"];
    assert_eq!((piqa.n, piqa.unmatched), (4, 1), "row x is in one run only");
    assert_eq!(piqa.diff, 0.0);
    assert!(!piqa.significant());
    assert!(
        verdict(piqa, "vanilla", "sdft")
            .starts_with("piqa: no significant difference between sdft and vanilla: sdft − vanilla = +0.0 points"),
        "{}",
        verdict(piqa, "vanilla", "sdft")
    );
    // Drift: b is lower on every response, so b drifts less.
    let drift = by["drift"];
    assert!((drift.diff - (-0.015)).abs() < 1e-12 && drift.hi < 0.0);
    assert!(
        verdict(drift, "vanilla", "sdft").starts_with(
            "drift: sdft drifts less from the seed than vanilla: sdft − vanilla = -0.0150 nats/token"
        ),
        "{}",
        verdict(drift, "vanilla", "sdft")
    );
}

#[test]
fn against_the_seed_the_seed_is_named_and_drift_is_the_tuned_models_own() {
    let tmp = tempfile::tempdir().unwrap();
    let zero: &[(&str, f64)] = &[("p", 0.0), ("q", 0.0), ("s", 0.0)];
    let drifted: &[(&str, f64)] = &[("p", 0.01), ("q", 0.02), ("s", 0.015)];
    let acc_seed: &[(&str, f64)] = &[("a", 0.0), ("b", 0.0), ("c", 0.0)];
    let acc_tuned: &[(&str, f64)] = &[("a", 1.0), ("b", 1.0), ("c", 1.0)];
    let seed = run(
        tmp.path(),
        "eval-seed",
        &[
            ("drift", "drift", zero),
            ("arc_easy", "knowledge", acc_seed),
        ],
    );
    let mut tuned = run(
        tmp.path(),
        "eval-vanilla",
        &[
            ("drift", "drift", drifted),
            ("arc_easy", "knowledge", acc_tuned),
        ],
    );
    for b in &mut tuned.results.benchmarks {
        b.hashes.model.adapter = Some("train-vanilla/adapter".into());
    }
    let rows = paired(&seed, &tuned, 42).unwrap();
    let by: BTreeMap<&str, &Paired> = rows.iter().map(|p| (p.benchmark.as_str(), p)).collect();
    let drift = by["drift"];
    assert!(drift.a_is_seed);
    // The per-row score of drift is each response's mean KL, not the primary `kl`.
    assert_eq!(drift.metric, "kl_response_mean");
    let v = verdict(drift, "eval-seed", "eval-vanilla");
    assert!(
        v.starts_with(
            "drift: eval-vanilla has drifted from the seed: eval-vanilla − eval-seed = +0.0150 nats/token"
        ),
        "{v}"
    );
    let v = verdict(by["arc_easy"], "eval-seed", "eval-vanilla");
    assert!(
        v.starts_with("arc_easy: eval-vanilla scores higher than the seed: eval-vanilla − eval-seed = +100.0 points"),
        "{v}"
    );
    // Two tuned runs: neither is the seed.
    let rows = paired(&tuned, &tuned, 42).unwrap();
    assert!(rows.iter().all(|p| !p.a_is_seed));
    let v = verdict(&rows[0], "eval-vanilla", "eval-vanilla");
    assert!(
        v.contains("no significant difference between eval-vanilla and eval-vanilla"),
        "{v}"
    );
}

#[test]
fn directions_and_per_row_metric_names() {
    use sdft_eval::bench::{catalogue, row_metric};
    use sdft_eval::compare::direction;
    assert_eq!(direction("drift", "kl"), "↓");
    assert_eq!(direction("drift", "kl_response_mean"), "↓");
    assert_eq!(direction("drift", "top1_agreement"), "↑");
    assert_eq!(direction("task fit", "row_mean_logprob"), "↑");
    assert_eq!(direction("safety", "safe_rate"), "↑");
    assert_eq!(direction("safety", "attack_success_rate"), "↓");
    assert_eq!(row_metric("task fit", "logprob"), "row_mean_logprob");
    assert_eq!(row_metric("math", "accuracy"), "accuracy");
    let all = catalogue();
    let find = |n: &str| all.iter().find(|b| b.name == n).unwrap();
    assert_eq!((find("drift").metric, find("drift").direction), ("kl", "↓"));
    assert!(find("humaneval").needs.contains("--allow-code-execution"));
    assert_eq!(find("gsm8k_ll").source, "gsm8k_test.json (paper data)");
    assert!(find("mc:FILE").source.contains("your own"));
    // Every name in the catalogue is one `--benchmarks` accepts.
    for b in &all {
        let name = b.name.replace("FILE", "x.jsonl");
        sdft_eval::bench::Benchmark::parse_list(&name).unwrap();
    }
}

/// Per-item flips: on a benchmark scored right or wrong per row, the rows right
/// in one run and wrong in the other, each way, over the ids both runs scored;
/// a benchmark with other scores (drift) has none.
#[test]
fn flips_list_the_rows_that_changed_each_way() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(
        dir.path(),
        "a",
        &[
            (
                "gsm8k",
                "task",
                &[("1", 1.0), ("2", 0.0), ("3", 1.0), ("4", 0.0)],
            ),
            ("drift", "drift", &[("1", 0.5), ("2", 0.0)]),
        ],
    );
    let b = run(
        dir.path(),
        "b",
        &[
            (
                "gsm8k",
                "task",
                &[("1", 0.0), ("2", 1.0), ("3", 1.0), ("4", 0.0), ("5", 1.0)],
            ),
            ("drift", "drift", &[("1", 0.25), ("2", 0.0)]),
        ],
    );
    let f = sdft_eval::report::flips(&a, &b).unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].benchmark.as_str(), f[0].n), ("gsm8k", 4));
    assert_eq!(
        (f[0].lost.clone(), f[0].gained.clone()),
        (vec!["1".to_string()], vec!["2".to_string()])
    );
    let md = sdft_eval::report::flips_section(&a, &b, &f);
    assert!(md.contains("| gsm8k | 4 | 1 | 1 | `1` | `2` |"), "{md}");
}
