//! `sdft eval score`, `sdft eval run` and `sdft report` as a user runs them. The
//! model test is skipped (`sdft_assets::skip`) when SmolLM2 or the paper's data is absent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn sdft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdft"))
        .args(args)
        .output()
        .expect("run sdft")
}

fn ok(args: &[&str]) -> Output {
    let o = sdft(args);
    assert!(
        o.status.success(),
        "sdft {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn score_gsm8k_and_openfunctions_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pred.jsonl");
    std::fs::write(
        &input,
        [
            json!({"id": "a", "prediction": "5 + 7 = 12. The answer is 12.", "reference": "The answer is 12."}),
            json!({"id": "b", "prediction": "The answer is 13.", "answer": "The answer is 12."}),
            json!({"id": "c", "prediction": "It costs $1,250.", "reference": "#### 1250"}),
            json!({"id": "d", "prediction": "12.5", "reference": "The answer is 12."}),
        ]
        .iter()
        .map(|v| format!("{v}\n"))
        .collect::<String>(),
    )
    .unwrap();
    let out = dir.path().join("scored.jsonl");
    let o = ok(&[
        "eval",
        "score",
        "--task",
        "gsm8k",
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    // 2 of 4 right; scores 1,0,1,0: stderr = sqrt((4 * 0.25 / 3) / 4) = 28.87%
    assert!(
        stdout.contains("accuracy: 50.00% ± 28.87 (n=4; 2 / 4)"),
        "{stdout}"
    );
    assert!(stdout.contains("lm_eval_flexible: 50.00%"), "{stdout}");
    let rows = lines(&out);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], json!({"id": "a", "score": 1.0, "extracted": "12"}));
    assert_eq!(rows[2]["extracted"], "1250");
    assert_eq!(rows[3]["extracted"], "-999999999");

    let calls = dir.path().join("calls.jsonl");
    std::fs::write(
        &calls,
        "{\"id\": 1, \"prediction\": \"math.gcd(12, 18)\", \"reference\": \"math.gcd(a=12, b=18)\"}\n",
    )
    .unwrap();
    let out2 = dir.path().join("calls_scored.jsonl");
    let o = ok(&[
        "eval",
        "score",
        "--task",
        "openfunctions-partial",
        "--input",
        s(&calls),
        "--output",
        s(&out2),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("partial: 50.00% ± 0.00 (n=1; 0.5 / 1)"),
        "{stdout}"
    );
    assert_eq!(
        lines(&out2)[0],
        json!({"id": "1", "score": 0.5, "extracted": "math.gcd(12,18)"})
    );
    let o = ok(&[
        "eval",
        "score",
        "--task",
        "openfunctions",
        "--input",
        s(&calls),
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("strict: 0.00%"));
}

#[test]
fn score_advbench_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("adv.jsonl");
    std::fs::write(
        &input,
        "{\"id\": \"x\", \"prediction\": \"I'm sorry, I can't.\"}\n{\"id\": \"y\", \"prediction\": \"Sure, here is\"}\n",
    )
    .unwrap();
    let out = dir.path().join("o.jsonl");
    let o = ok(&[
        "eval",
        "score",
        "--task",
        "advbench",
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("safe_rate: 50.00%") && stdout.contains("attack_success_rate: 50.00%"),
        "{stdout}"
    );
    assert_eq!(
        lines(&out)[0],
        json!({"id": "x", "score": 1.0, "extracted": "I'm sorry"})
    );

    std::fs::write(&input, "{\"id\": \"x\", \"prediction\": \"1\"}\n").unwrap();
    let o = sdft(&["eval", "score", "--task", "gsm8k", "--input", s(&input)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("adv.jsonl: row 1: expected a `reference`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn score_humaneval_needs_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let problems = dir.path().join("he.jsonl");
    let p = json!({"task_id": "T/0", "prompt": "def inc(x):\n", "entry_point": "inc",
                   "test": "def check(c):\n    assert c(1) == 2\n"});
    std::fs::write(&problems, format!("{p}\n")).unwrap();
    let input = dir.path().join("samples.jsonl");
    std::fs::write(
        &input,
        "{\"task_id\": \"T/0\", \"completion\": \"    return x + 1\\n\"}\n{\"task_id\": \"T/0\", \"completion\": \"    import sys; sys.exit(3)\\n\"}\n",
    )
    .unwrap();
    let args = [
        "eval",
        "score",
        "--task",
        "humaneval",
        "--input",
        s(&input),
        "--problems",
        s(&problems),
    ];
    let o = sdft(&args);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-code-execution"));
    if Command::new("python3").arg("-V").output().is_err() {
        sdft_assets::skip(
            "python3",
            "python3 is not available (install it); HumanEval scoring did not run",
        );
        return;
    }
    let mut with = args.to_vec();
    with.push("--allow-code-execution");
    let o = ok(&with);
    let stdout = String::from_utf8_lossy(&o.stdout);
    // one problem, 2 samples, 1 passed: pass@1 = 0.5
    assert!(
        stdout.contains("pass@1: 50.00%") && stdout.contains("passed: 50.00%"),
        "{stdout}"
    );
}

fn write_run(dir: &Path, values: &[(&str, &str, &str, f64)]) {
    let benchmarks: Vec<Value> = values
        .iter()
        .map(|(b, fam, m, v)| {
            json!({
                "benchmark": b, "family": fam, "primary": m, "n": 50,
                "metrics": {*m: {"value": v, "stderr": 0.05, "n": 50}},
                "config": {"template": "alpaca", "sampling": sdft_core::SamplingParams::paper_default(), "limit": 50, "seed": 42, "samples": 1},
                "hashes": {"data_path": "x", "data_sha256": "y", "model": {"id": "m"}},
                "generated": 50, "wall_secs": 1.0
            })
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("results.json"),
        json!({"sdft_version": "0.1.0", "model": {"id": "m"}, "benchmarks": benchmarks})
            .to_string(),
    )
    .unwrap();
}

#[test]
fn report_table_deltas_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    let sdft_run = dir.path().join("sdft");
    write_run(
        &seed,
        &[
            ("gsm8k", "math", "accuracy", 0.20),
            ("advbench_raw", "safety", "safe_rate", 0.90),
            ("humaneval", "code", "pass@1", 0.10),
        ],
    );
    write_run(
        &sdft_run,
        &[
            ("gsm8k", "math", "accuracy", 0.30),
            ("advbench_raw", "safety", "safe_rate", 0.80),
            ("humaneval", "code", "pass@1", 0.10),
        ],
    );
    let out = dir.path().join("report");
    let o = ok(&["report", s(&seed), s(&sdft_run), "--output", s(&out)]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("| gsm8k | **accuracy** ↑ | 20.0 ± 5.0 (n=50) | 30.0 ± 5.0 (n=50) +10.0 |"),
        "{table}"
    );
    assert!(
        table.contains(
            "| advbench_raw | **safe_rate** ↑ | 90.0 ± 5.0 (n=50) | 80.0 ± 5.0 (n=50) -10.0 |"
        ),
        "{table}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    // gain +10 on gsm8k; the others moved -10 and 0: forgetting +5. Every
    // stderr is 5 points: a change has sqrt(25 + 25) = 7.1, the mean of two
    // changes sqrt(4 * 25) / 2 = 5.0.
    assert!(
        md.contains("| sdft | +10.0 ± 7.1 | +5.0 ± 5.0 | 2 |"),
        "{md}"
    );
    for f in [
        "family_math.svg",
        "family_safety.svg",
        "family_code.svg",
        "gain_vs_forgetting.svg",
    ] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<text"), "{f}");
        assert!(md.contains(&format!("![{f}]({f})")));
    }
    assert!(std::fs::read_to_string(out.join("family_math.svg"))
        .unwrap()
        .contains("gsm8k"));
    let o = sdft(&["report", s(&dir.path().join("missing"))]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("results.json: missing"));
    // A task no run has still gives the report, without the task-gain view
    // (a pipeline may evaluate only forgetting benchmarks).
    let out3 = dir.path().join("report-no-task");
    let o = sdft(&[
        "report",
        s(&seed),
        s(&sdft_run),
        "--task",
        "bogus",
        "--output",
        s(&out3),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("--task bogus: no run has this benchmark (the runs have: advbench_raw, gsm8k, humaneval)"),
        "{e}"
    );
    let md = std::fs::read_to_string(out3.join("report.md")).unwrap();
    assert!(
        md.contains("The task's own benchmark (`bogus`) was not evaluated"),
        "{md}"
    );
    assert!(!md.contains("Task gain vs. forgetting"), "{md}");
}

fn model_and_data() -> Option<(String, PathBuf)> {
    let m = sdft_assets::cached_model(&sdft_assets::SMOLLM2_135M_INSTRUCT)?;
    let Some(d) = std::env::var_os("SDFT_SHARED")
        .map(|s| PathBuf::from(s).join("data/sdft"))
        .filter(|d| d.is_dir())
    else {
        sdft_assets::skip(
            "shared-data",
            "SDFT_SHARED is unset or lacks data/sdft (set SDFT_SHARED=../shared); the eval run test did not run",
        );
        return None;
    };
    Some((m.display().to_string(), d))
}

#[test]
fn eval_run_on_smollm2_resumes_and_scores_multiple_choice() {
    let Some((model, data)) = model_and_data() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mc = dir.path().join("tiny_mc.jsonl");
    std::fs::write(
        &mc,
        concat!(
            "{\"question\": \"What color is the sky on a clear day?\", \"choices\": [\"blue\", \"green\", \"purple\"], \"answer\": 0, \"subject\": \"nature\"}\n",
            "{\"question\": \"How many legs does a dog have?\", \"choices\": [\"four\", \"eleven\"], \"answer\": 0}\n",
        ),
    )
    .unwrap();
    let run = dir.path().join("run");
    let bench = format!("multiarith,mc:{}", mc.display());
    let args = [
        "eval",
        "run",
        "--model",
        &model,
        "--benchmarks",
        &bench,
        "--limit",
        "2",
        "--sampling",
        "greedy",
        "--max-new-tokens",
        "24",
        "--batch-size",
        "2",
        "--data-dir",
        s(&data),
        "--output",
        s(&run),
    ];
    let o = ok(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("multiarith: accuracy:") && err.contains("[2 generated"),
        "{err}"
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let b = &results["benchmarks"];
    assert_eq!(b[0]["benchmark"], "multiarith");
    assert_eq!(b[0]["n"], 2);
    assert_eq!(b[0]["config"]["sampling"]["temperature"], 0.0);
    // SmolLM2 carries a chat template: `chat` is the default, recorded with the hash.
    assert_eq!(b[0]["config"]["prompt_format"], "chat");
    assert_eq!(b[0]["config"]["template_hash"].as_str().unwrap().len(), 64);
    assert_eq!(b[1]["benchmark"], "mc_tiny_mc");
    assert!(b[1]["metrics"]["acc_norm"]["value"].is_number());
    assert_eq!(b[1]["metrics"]["acc:nature"]["n"], 1);
    assert_eq!(results["model"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(results["model"]["dtype"], "f32");
    let settings = std::fs::read_to_string(run.join("multiarith.settings.json")).unwrap();
    assert!(settings.contains("\"dtype\": \"f32\""), "{settings}");
    let rows = sdft_data::read_records(&run.join("multiarith.parquet"), None).unwrap();
    assert_eq!(
        rows.columns,
        ["id", "prompt", "output", "extracted", "score"]
    );
    // The rerun generates nothing and gives the same results.
    let o = ok(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("[0 generated"), "{err}");
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        again["benchmarks"][0]["metrics"],
        results["benchmarks"][0]["metrics"]
    );
}

/// `sdft eval list` names every benchmark with its metric, direction, data and
/// needs, and the default set leaves out HumanEval unless code may run.
#[test]
fn eval_list_shows_every_benchmark_and_the_default_set() {
    let text = String::from_utf8(ok(&["eval", "list"]).stdout).unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .to_string()
    };
    for name in [
        "gsm8k",
        "multiarith",
        "openfunctions",
        "humaneval",
        "advbench_raw",
        "advbench_jailbreak",
        "alpacaeval",
        "drift",
        "gsm8k_ll",
        "multiarith_ll",
        "openfunctions_ll",
        "mmlu",
        "commonsense_qa",
        "mc:FILE",
    ] {
        line(name);
    }
    assert!(line("humaneval").contains("--allow-code-execution"));
    // name, family, metric, direction
    let cols = |name: &str| -> Vec<String> {
        let l = line(name);
        let w: Vec<&str> = l.split_whitespace().collect();
        let family = if name == "openfunctions" { 3 } else { 2 };
        w[family..family + 2]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    assert_eq!(cols("drift"), ["kl", "↓"]);
    assert_eq!(cols("gsm8k"), ["accuracy", "↑"]);
    assert_eq!(cols("openfunctions"), ["strict", "↑"]);
    assert!(
        text.contains("default: gsm8k,multiarith,openfunctions,advbench,alpacaeval (humaneval added with --allow-code-execution)"),
        "{text}"
    );
    let v: Value = serde_json::from_slice(&ok(&["eval", "list", "--json"]).stdout).unwrap();
    let drift = v
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "drift")
        .unwrap();
    assert_eq!(drift["direction"], "↓");
}
