//! `sdft train` end to end on a tiny random model written by the test: a run killed
//! with SIGKILL and resumed reaches the same adapter as an uninterrupted one; the
//! adapter loads back (`--adapter`) and merges (`sdft model merge`) to the same
//! logits; bad configs name the key.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sdft_model::fixture::write_tiny_model;
use sdft_train::fixture::write_tiny_dataset;

fn sdft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdft"))
        .args(args)
        .output()
        .expect("run sdft")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "sdft failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), 3).unwrap();
    write_tiny_dataset(&dir.path().join("data.json"), 24, 5).unwrap();
    dir
}

fn train_args<'a>(root: &'a str, out: &'a str) -> Vec<String> {
    [
        "train",
        "--model",
        &format!("{root}/model"),
        "--data",
        &format!("{root}/data.json"),
        "--template",
        "alpaca",
        "--output",
        &format!("{root}/{out}"),
        "--max-steps",
        "60",
        "--save-steps",
        "5",
        "--batch-size",
        "2",
        "--grad-accum",
        "2",
        "--learning-rate",
        "2e-3",
        "--lora-targets",
        "q_proj,v_proj,down_proj",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run_train(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdft"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_killed_train_run_resumes_to_the_same_adapter() {
    let dir = setup();
    let root = dir.path().to_str().unwrap();
    let full = run_train(&train_args(root, "full"));
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );
    assert!(String::from_utf8_lossy(&full.stderr).contains("trained 60 steps"));

    let args = train_args(root, "killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdft"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = dir.path().join("killed/checkpoints/step-20");
    let t0 = Instant::now();
    while !ckpt.is_dir() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = dir.path().join("killed");
    assert!(!killed.join("adapter").exists(), "killed before the end");
    let mut resume = args.clone();
    resume.push("--resume".into());
    let o = run_train(&resume);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = std::fs::read(dir.path().join("full/adapter/adapter_model.safetensors")).unwrap();
    let b = std::fs::read(killed.join("adapter/adapter_model.safetensors")).unwrap();
    assert!(
        a == b,
        "the resumed adapter differs from the uninterrupted run's"
    );
    let rows = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(
        rows(&killed.join("metrics.csv")),
        rows(&dir.path().join("full/metrics.csv"))
    );
    // Without --resume an existing run directory is refused.
    let o = run_train(&args);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));

    // The adapter loads back, and the merged model gives the same logits.
    let model = format!("{root}/model");
    let adapter = format!("{root}/full/adapter");
    let merged = format!("{root}/merged");
    ok(sdft(&[
        "model",
        "merge",
        "--model",
        &model,
        "--adapter",
        &adapter,
        "--output",
        &merged,
    ]));
    let logits = |extra: &[&str]| -> serde_json::Value {
        let mut a = vec![
            "model",
            "logits",
            "--text",
            "w5 w9 w12 w40",
            "--json",
            "--top",
            "5",
        ];
        a.extend_from_slice(extra);
        serde_json::from_str(&ok(sdft(&a))).unwrap()
    };
    let base = logits(&["--model", &model]);
    let with_adapter = logits(&["--model", &model, "--adapter", &adapter]);
    let from_merged = logits(&["--model", &merged]);
    assert_ne!(
        base["top"], with_adapter["top"],
        "training changed the model"
    );
    let top = |v: &serde_json::Value| -> Vec<(u64, f64)> {
        v["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["id"].as_u64().unwrap(), e["logit"].as_f64().unwrap()))
            .collect()
    };
    for ((i1, l1), (i2, l2)) in top(&with_adapter).iter().zip(top(&from_merged)) {
        assert_eq!(*i1, i2);
        assert!((l1 - l2).abs() < 1e-4, "{l1} vs {l2}");
    }
}

#[test]
fn bad_configs_name_the_key() {
    let dir = setup();
    let root = dir.path().to_str().unwrap();
    let err = |extra: &[&str]| -> String {
        let mut a = train_args(root, "bad");
        a.extend(extra.iter().map(|s| s.to_string()));
        let o = run_train(&a);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let e = err(&["--lora-targets", "q_proj,wq"]);
    assert!(e.contains("lora_targets") && e.contains("wq"), "{e}");
    assert!(err(&["--lora-rank", "0"]).contains("lora_rank"));
    assert!(err(&["--lr-scheduler", "step"]).contains("lr_scheduler"));
    std::fs::write(dir.path().join("bad.toml"), "lora_rnak = 4\n").unwrap();
    let e = err(&["--config", &format!("{root}/bad.toml")]);
    assert!(e.contains("lora_rnak") && e.contains("bad.toml"), "{e}");
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let mut a = train_args(root, "bad2");
    a[4] = format!("{root}/empty.jsonl");
    let o = run_train(&a);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty.jsonl"));
}

#[test]
fn devices_flag_runs_replicas_and_names_itself_in_errors() {
    let dir = setup();
    let root = dir.path().to_str().unwrap();
    let args = |out: &str, extra: &[&str]| -> Vec<String> {
        let mut a = train_args(root, out);
        let i = a.iter().position(|s| s == "60").unwrap();
        a[i] = "6".into();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let fails = |extra: &[&str]| -> String {
        let o = run_train(&args("bad", extra));
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let e = fails(&["--devices", "cpu,tpu:0"]);
    assert!(
        e.contains("--devices") && e.contains("tpu:0") && e.contains("unknown device"),
        "{e}"
    );
    std::fs::write(dir.path().join("dp.toml"), "devices = [\"npu\"]\n").unwrap();
    let e = fails(&["--config", &format!("{root}/dp.toml")]);
    assert!(e.contains("`devices`") && e.contains("npu"), "{e}");
    if sdft_model::backend::backend_name() == "flex" {
        let e = fails(&["--devices", "cuda:0,cuda:1"]);
        assert!(
            e.contains("--devices") && e.contains("cuda:0") && e.contains("flex"),
            "{e}"
        );
    }
    // Two CPU replicas: the same losses as one device.
    for (out, extra) in [("one", &[][..]), ("two", &["--devices", "cpu,cpu"][..])] {
        let o = run_train(&args(out, extra));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let losses = |run: &str| -> Vec<f64> {
        std::fs::read_to_string(dir.path().join(run).join("metrics.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
            .collect()
    };
    let (one, two) = (losses("one"), losses("two"));
    assert_eq!(one.len(), 6);
    assert_eq!(one.len(), two.len());
    // One device takes the CPU training path, two replicas burn's autodiff: the
    // same numbers up to f32 rounding (1e-6 relative).
    for (a, b) in one.iter().zip(&two) {
        assert!(
            (a - b).abs() <= 1e-6 * a.abs().max(1.0),
            "{one:?} vs {two:?}"
        );
    }
    let run_json = std::fs::read_to_string(dir.path().join("two/run.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&run_json).unwrap();
    assert_eq!(v["config"]["devices"], serde_json::json!(["cpu", "cpu"]));
}

/// `--map` (what `[data] map` of a pipeline config passes to train-vanilla): rows
/// with other column names train once mapped, from OUTPUT.input.jsonl.
#[test]
fn train_maps_columns_of_its_input() {
    let dir = setup();
    let root = dir.path();
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(root.join("data.json")).unwrap()).unwrap();
    let renamed: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::json!({"col_a": r["instruction"], "col_b": r["output"]}))
        .collect();
    let input = root.join("renamed.json");
    std::fs::write(&input, serde_json::to_string(&renamed).unwrap()).unwrap();
    let out = root.join("mapped");
    let args = |map: bool| {
        let mut a = vec![
            "train".to_string(),
            "--model".into(),
            root.join("model").display().to_string(),
            "--input".into(),
            input.display().to_string(),
            "--template".into(),
            "alpaca".into(),
            "--output".into(),
            out.display().to_string(),
            "--max-steps".into(),
            "2".into(),
        ];
        if map {
            a.extend(["--map", "col_a=instruction", "--map", "col_b=output"].map(String::from));
        }
        a
    };
    let o = run_train(&args(false));
    assert!(!o.status.success(), "unmapped columns cannot train");
    ok(run_train(&args(true)));
    let mapped = std::fs::read_to_string(root.join("mapped.input.jsonl")).unwrap();
    assert_eq!(mapped.lines().count(), 24);
    assert!(out.join("adapter/adapter_model.safetensors").is_file());
}
