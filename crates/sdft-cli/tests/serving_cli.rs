//! `sdft generate`, `sdft distill` and `sdft eval run` with `--generator openai:URL`
//! against a real llama.cpp `llama-server` on 127.0.0.1 (a free port), serving the
//! cached SmolLM2-135M-Instruct GGUF, started and stopped by the test. The binary is
//! `$SDFT_LLAMA_SERVER`, or `$SDFT_HOME/bin/llama-server` as `cargo xtask
//! llama-server` links it; without it (or without the model) the test says once that
//! it did not run.

#[path = "support/llama_server.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::{fails, llama_server, ok, sdft, start};

use sdft_distill::{read_rows, Summary};
use serde_json::Value;

/// The cached SmolLM2 GGUF (`cached_model` records the skip when it is absent).
fn model() -> Option<PathBuf> {
    sdft_model::assets::cached_model(&sdft_model::assets::SMOLLM2_135M_INSTRUCT)
}

fn settings(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn generate_distill_and_eval_through_llama_server() {
    let (Some(bin), Some(model)) = (llama_server(), model()) else {
        return;
    };
    let server = start(&bin, &model, &[]);
    let dir = tempfile::tempdir().unwrap();
    let m = model.to_str().unwrap();
    let url = format!("openai:{}", server.url);
    let served = ["--generator", &url, "--served-model", "smollm2"];

    // generate: chat prompts rendered here, generated there, resumable settings.
    let input = dir.path().join("prompts.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"a\",\"prompt\":\"What is 2 + 3?\"}\n{\"id\":\"b\",\"prompt\":\"Name a colour.\"}\n{\"id\":\"c\",\"prompt\":\"Say hello.\"}\n",
    )
    .unwrap();
    let out = dir.path().join("gen.jsonl");
    let o = out.to_str().unwrap();
    let gen = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "generate",
            "--model",
            m,
            "--input",
            input.to_str().unwrap(),
            "--output",
            o,
            "--chat",
            "--greedy",
            "--max-new-tokens",
            "12",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect()
    };
    let args = gen(&[&served[..], &["--concurrency", "3"]].concat());
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let rows: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    for (r, id) in rows.iter().zip(["a", "b", "c"]) {
        assert_eq!(r["id"], id);
        assert!(r["completion_tokens"].as_u64().unwrap() >= 1, "{r}");
        assert!(r["completion_tokens"].as_u64().unwrap() <= 12, "{r}");
        assert!(r["prompt_tokens"].as_u64().unwrap() > 5, "{r}");
        assert!(!r["text"].as_str().unwrap().contains("<|im_start|>"), "{r}");
    }
    let s = settings(&dir.path().join("gen.jsonl.settings.json"));
    assert_eq!(s["generator"], url.as_str());
    assert_eq!(s["served_model"], "smollm2");
    // The same settings: up to date; another served model or in-process: refused.
    let again = sdft(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(String::from_utf8_lossy(&again.stderr).contains("up to date"));
    let other = gen(&["--generator", &url, "--served-model", "other"]);
    let e = fails(&other.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("served_model"), "{e}");
    let local = gen(&[]);
    let e = fails(&local.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("generator"), "{e}");

    // distill: the paper's custom rewriting through the server, chunk files, settings.
    let data = dir.path().join("task.json");
    std::fs::write(
        &data,
        r#"[{"instruction":"What is 2 + 2?","output":"2 + 2 = 4."},
            {"instruction":"Name the largest planet.","output":"Jupiter is the largest planet."}]"#,
    )
    .unwrap();
    let dout = dir.path().join("distilled.parquet");
    let d = [
        "distill",
        "--model",
        m,
        "--data",
        data.to_str().unwrap(),
        "--output",
        dout.to_str().unwrap(),
        "--greedy",
        "--max-new-tokens",
        "24",
        "--concurrency",
        "2",
    ];
    ok(&[&d[..], &served[..]].concat());
    let rows = read_rows(&dout).unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r.completion_tokens.unwrap() >= 1 && r.prompt_tokens.unwrap() > 10);
    }
    let summary = Summary::load(&Summary::path_for(&dout)).unwrap();
    assert_eq!(summary.kept + summary.fallback, 2);
    let s = settings(&dir.path().join("distilled.parquet.settings.json"));
    assert_eq!(s["generator"], url.as_str());
    // llama-server cannot score prompt tokens: --measure-gap fails and says so.
    let e = fails(&[&d[..], &served[..], &["--measure-gap"]].concat());
    assert!(
        e.contains("cannot score") && e.contains("llama-server"),
        "{e}"
    );

    // eval run: a multiple-choice benchmark needs scoring, which this server lacks.
    let mc = dir.path().join("mc.jsonl");
    std::fs::write(
        &mc,
        "{\"question\":\"2 + 2 =\",\"choices\":[\"4\",\"5\"],\"answer\":0}\n",
    )
    .unwrap();
    let bench = format!("mc:{}", mc.display());
    let run = dir.path().join("eval");
    let e = fails(
        &[
            &[
                "eval",
                "run",
                "--model",
                m,
                "--benchmarks",
                &bench,
                "--output",
                run.to_str().unwrap(),
            ][..],
            &served[..],
        ]
        .concat(),
    );
    assert!(
        e.contains("cannot score") && e.contains("does not echo prompt log-probabilities"),
        "{e}"
    );
    // ...and a generation benchmark runs through it (with the paper's data).
    let Some(shared) = std::env::var_os("SDFT_SHARED").map(PathBuf::from) else {
        sdft_assets::skip(
            "shared-data",
            "SDFT_SHARED is unset; the eval run through llama-server did not run",
        );
        return;
    };
    let data_dir = shared.join("data/sdft");
    ok(&[
        &[
            "eval",
            "run",
            "--model",
            m,
            "--benchmarks",
            "gsm8k",
            "--limit",
            "2",
            "--greedy",
            "--max-new-tokens",
            "48",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--output",
            run.to_str().unwrap(),
        ][..],
        &served[..],
    ]
    .concat());
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["model"]["generator"], url.as_str());
    let b = &results["benchmarks"][0];
    assert_eq!(b["benchmark"], "gsm8k");
    assert_eq!(b["n"], 2);
    let s = settings(&run.join("gsm8k.settings.json"));
    assert_eq!(s["served_model"], "smollm2");
}
