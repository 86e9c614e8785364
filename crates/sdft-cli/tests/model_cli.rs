//! `sdft model ...` and `sdft generate` on SmolLM2-135M-Instruct, as a user runs
//! them (skipped, with a note, when the model is not in the cache).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn model() -> Option<String> {
    sdft_model::assets::cached_model(&sdft_model::assets::SMOLLM2_135M_INSTRUCT)
        .map(|p| p.display().to_string())
}

fn sdft(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_sdft"))
        .args(args)
        .output()
        .expect("run sdft");
    assert!(
        o.status.success(),
        "sdft {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn info_tokenize_and_logits() {
    let Some(m) = model() else { return };
    let info = json(&sdft(&["model", "info", &m, "--json"]));
    assert_eq!(info["parameters"], 134_515_008u64);
    assert_eq!(info["config"]["num_key_value_heads"], 3);
    assert!(info["chat_template"]
        .as_str()
        .unwrap()
        .contains("<|im_start|>"));
    let t = json(&sdft(&[
        "model",
        "tokenize",
        "--model",
        &m,
        "--text",
        "<|im_start|>user\nHi<|im_end|>",
        "--json",
    ]));
    assert_eq!(t["ids"], serde_json::json!([1, 4093, 198, 26843, 2]));
    let l = json(&sdft(&[
        "model",
        "logits",
        "--model",
        &m,
        "--text",
        "The capital of France is",
        "--top",
        "3",
        "--json",
    ]));
    assert_eq!(l["tokens"], serde_json::json!([504, 3575, 282, 4649, 314]));
    assert_eq!(l["top"][0]["id"], 7042);
    assert_eq!(l["top"][0]["token"], "ĠParis");
    assert_eq!(l["top"].as_array().unwrap().len(), 3);
    let all = json(&sdft(&[
        "model",
        "logits",
        "--model",
        &m,
        "--text",
        "Hello world",
        "--top",
        "2",
        "--json",
        "--all-positions",
    ]));
    assert_eq!(
        all["top"].as_array().unwrap().len(),
        all["tokens"].as_array().unwrap().len()
    );
}

#[test]
fn generate_writes_resumes_and_respects_the_contract() {
    let Some(m) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"What is the capital of France?\"}]}\n{\"id\": \"b\", \"prompt\": \"Name a color.\"}\n",
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let args = |o: &PathBuf| {
        vec![
            "generate".to_string(),
            "--model".into(),
            m.clone(),
            "--input".into(),
            input.display().to_string(),
            "--output".into(),
            o.display().to_string(),
            "--chat".into(),
            "--greedy".into(),
            "--max-new-tokens".into(),
            "12".into(),
            "--batch-size".into(),
            "2".into(),
        ]
    };
    let a: Vec<String> = args(&out);
    sdft(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], "a");
    assert_eq!(rows[0]["text"], "The capital of France is Paris.");
    assert_eq!(rows[0]["finish_reason"], "eos");
    assert_eq!(rows[0]["prompt_tokens"], 37);
    for k in [
        "id",
        "text",
        "prompt_tokens",
        "completion_tokens",
        "finish_reason",
    ] {
        assert!(rows[1].get(k).is_some(), "{k}");
    }
    // A partial file from an interrupted run: its rows are kept, a torn line dropped.
    let out2 = dir.path().join("out2.jsonl");
    let partial = dir.path().join("out2.jsonl.partial.jsonl");
    let first = text
        .lines()
        .next()
        .unwrap()
        .replace("Paris.", "Paris (kept from the partial file).");
    std::fs::write(&partial, format!("{first}\n{{\"id\": \"b\", \"te")).unwrap();
    // (an interrupted run recorded its settings before its first row)
    std::fs::copy(
        dir.path().join("out.jsonl.settings.json"),
        dir.path().join("out2.jsonl.settings.json"),
    )
    .unwrap();
    let o = sdft(&args(&out2).iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("resumed: 1 of 2 rows were already generated"),
        "{err}"
    );
    let text2 = std::fs::read_to_string(&out2).unwrap();
    assert!(text2.contains("kept from the partial file"));
    assert_eq!(text2.lines().count(), 2);
    assert!(!partial.exists());
}

#[test]
fn a_killed_generate_run_resumes_to_the_same_output() {
    let Some(m) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let rows: String = (0..6)
        .map(|i| {
            format!(
                "{{\"id\": \"r{i}\", \"prompt\": \"Write one sentence about the number {i}.\"}}\n"
            )
        })
        .collect();
    std::fs::write(&input, rows).unwrap();
    let run = |out: &PathBuf| {
        Command::new(env!("CARGO_BIN_EXE_sdft"))
            .args(["generate", "--model", &m, "--input"])
            .arg(&input)
            .arg("--output")
            .arg(out)
            .args([
                "--chat",
                "--max-new-tokens",
                "24",
                "--batch-size",
                "1",
                "--seed",
                "5",
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Uninterrupted reference run.
    let whole = dir.path().join("whole.jsonl");
    assert!(run(&whole).wait().unwrap().success());
    // A run killed (SIGKILL) once some rows are on disk, then the same command again.
    let out = dir.path().join("out.jsonl");
    let partial = dir.path().join("out.jsonl.partial.jsonl");
    let mut child = run(&out);
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&partial)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 2
    {
        assert!(start.elapsed().as_secs() < 120, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists(), "the final file is written only at the end");
    let done_before = std::fs::read_to_string(&partial).unwrap().lines().count();
    assert!(
        (2..6).contains(&done_before),
        "{done_before} rows before the kill"
    );
    assert!(run(&out).wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&whole).unwrap()
    );
}

/// `--dtype quantized` as a user passes it: the logits come from the integer
/// products on the GGUF file's own quantized matrices (the same top token as
/// `f32`, its logit within the bound `sdft-model/tests/quantized.rs` states),
/// and an adapter, which would need the `f32` matrices such a load does not
/// hold, is refused with an error that names the way out.
#[test]
fn quantized_logits_and_a_refused_adapter() {
    let Some(m) = model() else { return };
    let top = |dtype: &str| {
        json(&sdft(&[
            "model",
            "logits",
            "--model",
            &m,
            "--dtype",
            dtype,
            "--text",
            "The capital of France is",
            "--top",
            "3",
            "--json",
        ]))
    };
    let (q, f) = (top("quantized"), top("f32"));
    assert_eq!(q["tokens"], f["tokens"]);
    assert_eq!(q["top"][0]["id"], f["top"][0]["id"]);
    let (a, b) = (
        q["top"][0]["logit"].as_f64().unwrap(),
        f["top"][0]["logit"].as_f64().unwrap(),
    );
    assert!(
        a != b && (a - b).abs() < 2.5,
        "quantized {a} against f32 {b}"
    );

    let adapter = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_sdft"))
        .args([
            "model",
            "logits",
            "--model",
            &m,
            "--dtype",
            "quantized",
            "--text",
            "Hi",
        ])
        .arg("--adapter")
        .arg(adapter.path())
        .output()
        .expect("run sdft");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("quantized-only") && err.contains("--dtype f32") && !err.contains("panicked"),
        "{err}"
    );
}
