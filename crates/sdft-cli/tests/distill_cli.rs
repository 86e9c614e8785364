//! `sdft distill` end to end with SmolLM2-135M-Instruct on rows of the paper's GSM8K
//! and OpenFunctions data: output schema, fallback accounting, summary, gap, shards
//! and merge, and resume after SIGKILL. Skipped (`sdft_assets::skip`) without the
//! model or without `SDFT_SHARED`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sdft_distill::{read_rows, ChunkStore, DistilledRow, Summary};

/// The cached SmolLM2 GGUF (`cached_model` records the skip when it is absent).
fn model() -> Option<String> {
    sdft_model::assets::cached_model(&sdft_model::assets::SMOLLM2_135M_INSTRUCT)
        .map(|p| p.display().to_string())
}

fn data(file: &str) -> Option<PathBuf> {
    let d = std::env::var_os("SDFT_SHARED").map(|s| PathBuf::from(s).join("data/sdft").join(file));
    match d {
        Some(p) if p.is_file() => Some(p),
        _ => {
            sdft_model::assets::skip(
                "shared-data",
                &format!(
                    "SDFT_SHARED is unset or lacks data/sdft/{file} (set SDFT_SHARED=../shared)"
                ),
            );
            None
        }
    }
}

fn distill(m: &str, data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sdft"));
    c.args(["distill", "--model", m, "--data"])
        .arg(data)
        .arg("--output")
        .arg(out)
        .args(["--batch-size", "4"])
        .args(extra);
    c
}

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn accounting(rows: &[DistilledRow], s: &Summary) {
    assert_eq!(s.rows, rows.len());
    assert_eq!(s.kept + s.fallback, s.rows);
    assert_eq!(s.kept, rows.iter().filter(|r| r.kept).count());
    assert_eq!(s.fallback_by_reason.values().sum::<usize>(), s.fallback);
    for r in rows {
        if r.kept {
            assert_eq!(Some(&r.response), r.distilled.as_ref());
            assert!(r.reason.is_none());
        } else {
            assert_eq!(r.response, r.original, "{}: fallback to the original", r.id);
            assert!(r.reason.is_some());
        }
        assert!(r.completion_tokens.unwrap() >= 1 && r.prompt_tokens.unwrap() > 10);
    }
    assert_eq!(
        s.tokens_generated,
        rows.iter()
            .map(|r| r.completion_tokens.unwrap() as usize)
            .sum::<usize>()
    );
}

#[test]
fn gsm8k_and_openfunctions_rows_distill_with_checks_and_gap() {
    let (Some(m), Some(gsm), Some(of)) = (
        model(),
        data("gsm8k_train.json"),
        data("openfunction_train.json"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // GSM8K: the paper's template and math check, sampled with the paper's preset.
    let out = dir.path().join("gsm8k.parquet");
    let export = dir.path().join("distilled_gsm8k.json");
    let text = ok(distill(
        &m,
        &gsm,
        &out,
        &[
            "--task",
            "gsm8k",
            "--limit",
            "4",
            "--max-new-tokens",
            "24",
            "--measure-gap",
            "--prompt-format",
            "paper",
        ],
    )
    .arg("--export")
    .arg(&export));
    assert!(text.contains("distilled 4 rows"), "{text}");
    assert!(text.contains("distribution gap under `gsm8k`"), "{text}");
    let rows = read_rows(&out).unwrap();
    let summary = Summary::load(&Summary::path_for(&out)).unwrap();
    accounting(&rows, &summary);
    assert!(!ChunkStore::dir_for(&out).exists());
    for r in &rows {
        assert!(r
            .prompt
            .ends_with("[/INST] Great! Let's think step by step. "));
        assert!(!r.distilled.as_deref().unwrap().starts_with("Great!"));
    }
    let gap = summary.gap.as_ref().unwrap();
    assert_eq!(gap.original.rows, 4);
    assert!(gap.original.mean_logprob < 0.0 && gap.original.perplexity > 1.0);
    assert_eq!(summary.manifest.task, "gsm8k");
    assert_eq!(summary.manifest.seed, 42);
    assert_eq!(summary.manifest.model_sha256.len(), 64);
    assert_eq!(
        summary.manifest.prompt_format,
        sdft_data::PromptFormat::Paper
    );
    assert_eq!(summary.manifest.template_hash.len(), 64);
    // The export keeps the paper's `question`/`answer` layout, `answer` = response.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4);
    assert_eq!(v[0]["answer"].as_str().unwrap(), rows[0].response);
    assert!(v[0].get("question").is_some());

    // The default for SmolLM2 (it carries a chat template): the same preset's parts
    // through ChatML, the forced prefix opening the assistant's text; the checks
    // see the text after it.
    let chat = dir.path().join("gsm8k-chat.parquet");
    ok(&mut distill(
        &m,
        &gsm,
        &chat,
        &["--task", "gsm8k", "--limit", "2", "--max-new-tokens", "8"],
    ));
    let summary = Summary::load(&Summary::path_for(&chat)).unwrap();
    assert_eq!(
        summary.manifest.prompt_format,
        sdft_data::PromptFormat::Chat
    );
    for r in read_rows(&chat).unwrap() {
        assert!(r
            .prompt
            .starts_with("<|im_start|>system\nYou are an expert in math."));
        assert!(r
            .prompt
            .ends_with("<|im_end|>\n<|im_start|>assistant\nGreat! Let's think step by step. "));
        assert!(!r.distilled.as_deref().unwrap_or("").contains("<|im_end|>"));
    }

    // OpenFunctions: the refer template and the function-call check; a rerun is a no-op.
    let out = dir.path().join("of.parquet");
    let args = [
        "--task",
        "openfunctions",
        "--limit",
        "3",
        "--max-new-tokens",
        "16",
        "--greedy",
    ];
    ok(&mut distill(&m, &of, &out, &args));
    let rows = read_rows(&out).unwrap();
    accounting(&rows, &Summary::load(&Summary::path_for(&out)).unwrap());
    assert!(rows[0].prompt.contains("### Reference Answer:\n"));
    for r in rows.iter().filter(|r| !r.kept) {
        let key = r.reason_key().unwrap();
        assert!(key == "function_call" || key == "ban_phrase", "{key}");
    }
    let again = ok(&mut distill(&m, &of, &out, &args));
    assert!(again.contains("distilled 3 rows"));
    assert_eq!(
        read_rows(&out).unwrap(),
        rows,
        "a rerun of a finished run changes nothing"
    );

    // Shards joined by merge equal the unsharded run (greedy; ids decide shards).
    let mut shards = Vec::new();
    for k in 0..2 {
        let p = dir.path().join(format!("of-{k}.parquet"));
        ok(distill(&m, &of, &p, &args).args(["--shard", &format!("{k}/2")]));
        shards.push(p);
    }
    let merged = dir.path().join("merged.parquet");
    let mut c = Command::new(env!("CARGO_BIN_EXE_sdft"));
    c.args(["distill", "merge", "--limit", "3", "--data"])
        .arg(&of)
        .arg("--output")
        .arg(&merged)
        .args(&shards);
    ok(&mut c);
    assert_eq!(read_rows(&merged).unwrap(), rows);
    // A missing shard fails and names the missing ids.
    let mut c = Command::new(env!("CARGO_BIN_EXE_sdft"));
    c.args(["distill", "merge", "--limit", "3", "--data"])
        .arg(&of)
        .arg("--output")
        .arg(&merged)
        .arg(&shards[0]);
    let o = c.output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("source ids in no shard"));
}

#[test]
fn a_killed_distill_run_resumes_to_the_same_output() {
    let (Some(m), Some(gsm)) = (model(), data("gsm8k_train.json")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--task",
        "gsm8k",
        "--limit",
        "6",
        "--max-new-tokens",
        "20",
        "--flush-rows",
        "1",
        "--seed",
        "7",
    ];
    let whole = dir.path().join("whole.parquet");
    ok(&mut distill(&m, &gsm, &whole, &args));
    let out = dir.path().join("out.parquet");
    let parts = ChunkStore::dir_for(&out);
    let mut child = distill(&m, &gsm, &out, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let chunks = || {
        std::fs::read_dir(&parts)
            .map(|d| {
                d.filter(|e| {
                    let n = e.as_ref().unwrap().file_name();
                    let n = n.to_string_lossy();
                    n.starts_with("chunk-") && n.ends_with(".parquet")
                })
                .count()
            })
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    while chunks() < 2 {
        assert!(start.elapsed().as_secs() < 300, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = chunks();
    assert!(!out.exists(), "the final file is written only at the end");
    assert!((2..6).contains(&before), "{before} chunks before the kill");
    // Resuming with other settings is refused rather than mixing rows.
    let mut other = args.to_vec();
    let last = other.len() - 1;
    other[last] = "8";
    let o = distill(&m, &gsm, &out, &other).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("made with other settings: sampling.seed (recorded 7, now 8)"),
        "{err}"
    );
    // The same command continues where the killed run stopped.
    let text = ok(&mut distill(&m, &gsm, &out, &args));
    assert!(!parts.exists());
    let summary = Summary::load(&Summary::path_for(&out)).unwrap();
    assert!(summary.resumed_rows >= 2, "{text}");
    assert_eq!(read_rows(&out).unwrap(), read_rows(&whole).unwrap());
}

/// Issue 21: one row far over the model's context (10 MB of text, about 2 million
/// tokens) falls back with reason `too_long`, counted in the summary, and the other
/// rows are distilled; it used to abort the whole run after tokenizing all of it.
#[test]
fn a_row_too_long_for_the_context_falls_back_and_the_run_continues() {
    let Some(m) = model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("rows.json");
    let huge = "Count the apples again. ".repeat(420_000);
    let rows = serde_json::json!([
        {"question": "Ann has 2 cats and gets 3 more. How many cats does she have?",
         "answer": "2 + 3 = 5\nThe answer is 5."},
        {"question": huge, "answer": "The answer is 1."},
        {"question": "What is 10 * 10?", "answer": "10 * 10 = 100\nThe answer is 100."},
    ]);
    std::fs::write(&data, serde_json::to_vec(&rows).unwrap()).unwrap();
    let out = dir.path().join("out.parquet");
    let text = ok(&mut distill(
        &m,
        &data,
        &out,
        &["--task", "gsm8k", "--max-new-tokens", "8", "--seed", "3"],
    ));
    let rows = read_rows(&out).unwrap();
    let summary = Summary::load(&Summary::path_for(&out)).unwrap();
    assert_eq!(rows.len(), 3, "{text}");
    assert_eq!(
        summary.fallback_by_reason.get("too_long"),
        Some(&1),
        "{text}"
    );
    let long = rows
        .iter()
        .find(|r| r.instruction.len() > 1_000_000)
        .unwrap();
    assert_eq!(long.reason.as_deref(), Some("too_long"));
    assert!(!long.kept && long.distilled.is_none() && long.completion_tokens.is_none());
    assert_eq!(long.response, "The answer is 1.");
    for r in rows.iter().filter(|r| r.instruction.len() < 1000) {
        assert!(r.completion_tokens.unwrap() >= 1, "{}: generated", r.id);
        assert_ne!(r.reason.as_deref(), Some("too_long"));
    }
}
