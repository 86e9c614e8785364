//! The reuse rule from the command line, on a tiny random model: an output is
//! continued only with the settings that made it; other settings are refused with
//! their names (and redone with `--overwrite`); a second writer fails at once. And
//! the small output checks: extensions, directories, file modes, zero counts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sdft_model::fixture::write_tiny_model;
use sdft_train::fixture::write_tiny_dataset;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), 3).unwrap();
    write_tiny_dataset(&dir.path().join("data.json"), 24, 5).unwrap();
    let prompts: String = (0..8)
        .map(|i| format!("{{\"id\": \"p{i}\", \"prompt\": \"w{i} w2 w3\"}}\n"))
        .collect();
    std::fs::write(dir.path().join("prompts.jsonl"), prompts).unwrap();
    dir
}

fn p(dir: &Path, rel: &str) -> String {
    dir.join(rel).display().to_string()
}

fn sdft(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sdft"));
    c.args(args);
    c
}

fn ok(args: &[&str]) -> String {
    let o = sdft(args).output().unwrap();
    assert!(
        o.status.success(),
        "sdft {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fails(args: &[&str]) -> String {
    let o: Output = sdft(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "sdft {} succeeded: {err}",
        args.join(" ")
    );
    err
}

/// `generate` with `--max-new-tokens 8` unless `extra` gives it.
fn generate<'a>(d: &'a [String; 3], seed: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "generate", "--model", &d[0], "--input", &d[1], "--output", &d[2], "--seed", seed,
    ];
    if !extra.contains(&"--max-new-tokens") {
        a.extend(["--max-new-tokens", "8"]);
    }
    a.extend_from_slice(extra);
    a
}

#[test]
fn generate_refuses_other_settings_and_overwrite_redoes() {
    let dir = setup();
    let d = dir.path();
    // A missing output directory is created.
    let args = [
        p(d, "model"),
        p(d, "prompts.jsonl"),
        p(d, "new/dir/out.jsonl"),
    ];
    // Killed with seed 7 (a partial file of 3 rows is what a kill leaves) ...
    ok(&generate(&args, "7", &[]));
    let out = PathBuf::from(&args[2]);
    let whole = std::fs::read_to_string(&out).unwrap();
    let partial = sdft_data::generations::partial_path(&out);
    std::fs::write(
        &partial,
        whole.lines().take(3).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    std::fs::remove_file(&out).unwrap();
    // ... and rerun with seed 8: refused, naming the seed; nothing mixed.
    let err = fails(&generate(&args, "8", &[]));
    assert!(err.contains("sampling.seed (recorded 7, now 8)"), "{err}");
    assert!(!out.exists());
    // A finished output is not returned for other settings either.
    ok(&generate(&args, "7", &[]));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), whole);
    let err = fails(&generate(&args, "7", &["--max-new-tokens", "4"]));
    assert!(
        err.contains("sampling.max_new_tokens (recorded 8, now 4)"),
        "{err}"
    );
    let err = fails(&generate(&args, "7", &["--limit", "2"]));
    assert!(err.contains("limit (recorded null, now 2)"), "{err}");
    // The same settings: up to date; --overwrite redoes with the new ones.
    assert!(ok(&generate(&args, "7", &[])).contains("up to date"));
    ok(&generate(&args, "8", &["--overwrite"]));
    assert_ne!(std::fs::read_to_string(&out).unwrap(), whole);
}

#[test]
fn generate_checks_its_output_and_counts_first() {
    let dir = setup();
    let d = dir.path();
    let args = [p(d, "model"), p(d, "prompts.jsonl"), p(d, "out.csv")];
    let err = fails(&generate(&args, "7", &[]));
    assert!(
        err.contains("expected a file ending in .jsonl or .parquet"),
        "{err}"
    );
    assert!(!err.contains("--format"), "{err}");
    let args = [p(d, "model"), p(d, "prompts.jsonl"), p(d, "out.jsonl")];
    let err = fails(&generate(&args, "7", &["--batch-size", "0"]));
    assert!(err.contains("at least 1"), "{err}");
    // A path under a file names the file.
    std::fs::write(d.join("afile"), "x").unwrap();
    let args = [
        p(d, "model"),
        p(d, "prompts.jsonl"),
        p(d, "afile/sub/out.jsonl"),
    ];
    let err = fails(&generate(&args, "7", &[]));
    assert!(
        err.contains("is a file, so a directory cannot be created"),
        "{err}"
    );
    assert!(!err.contains("os error 17"), "{err}");
}

/// `distill` with `--max-new-tokens 8` unless `extra` gives it.
fn distill_args<'a>(d: &'a [String; 3], seed: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "distill", "--model", &d[0], "--data", &d[1], "--output", &d[2], "--task", "alpaca",
        "--seed", seed,
    ];
    if !extra.contains(&"--max-new-tokens") {
        a.extend(["--max-new-tokens", "8"]);
    }
    a.extend_from_slice(extra);
    a
}

#[test]
fn distill_refuses_other_settings_mixed_shards_and_a_second_writer() {
    let dir = setup();
    let d = dir.path();
    let args = [p(d, "model"), p(d, "data.json"), p(d, "out.parquet")];
    ok(&distill_args(&args, "11", &[]));
    let before = std::fs::read(&args[2]).unwrap();
    let err = fails(&distill_args(&args, "99", &[]));
    assert!(err.contains("sampling.seed (recorded 11, now 99)"), "{err}");
    assert_eq!(std::fs::read(&args[2]).unwrap(), before);
    let summary = std::fs::read_to_string(d.join("out.summary.json")).unwrap();
    assert!(
        summary.contains("\"seed\": 11"),
        "the summary is not rewritten"
    );
    ok(&distill_args(&args, "99", &["--overwrite"]));

    // Parquet bytes never go under another name; zero counts are refused.
    let jsonl = [p(d, "model"), p(d, "data.json"), p(d, "o.jsonl")];
    let err = fails(&distill_args(&jsonl, "11", &[]));
    assert!(
        err.contains("expected an output ending in .parquet"),
        "{err}"
    );
    assert!(!d.join("o.jsonl").exists());
    for flag in ["--batch-size", "--flush-rows"] {
        let err = fails(&distill_args(&args, "11", &[flag, "0"]));
        assert!(err.contains("at least 1"), "{flag}: {err}");
    }

    // Shards made with other sampling do not merge.
    let s0 = [p(d, "model"), p(d, "data.json"), p(d, "s0.parquet")];
    let s1 = [p(d, "model"), p(d, "data.json"), p(d, "s1.parquet")];
    ok(&distill_args(&s0, "11", &["--shard", "0/2"]));
    ok(&distill_args(&s1, "12", &["--shard", "1/2"]));
    let merge = |s1: &str| {
        sdft(&[
            "distill",
            "merge",
            "--data",
            &args[1],
            "--output",
            &p(d, "m.parquet"),
            &s0[2],
            s1,
        ])
        .output()
        .unwrap()
    };
    let o = merge(&s1[2]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("made with other settings than") && err.contains("sampling.seed"),
        "{err}"
    );
    // Agreeing shards merge, and the merged output records the agreed settings.
    let s1b = [p(d, "model"), p(d, "data.json"), p(d, "s1b.parquet")];
    ok(&distill_args(&s1b, "11", &["--shard", "1/2"]));
    assert!(merge(&s1b[2]).status.success());
    let agreed = std::fs::read_to_string(d.join("m.parquet.settings.json")).unwrap();
    assert!(
        agreed.contains("\"seed\": 11") && !agreed.contains("\"shard\""),
        "{agreed}"
    );

    // Two writers into one output: the second fails at once.
    let big = d.join("big.json");
    write_tiny_dataset(&big, 400, 9).unwrap();
    let two = [
        p(d, "model"),
        big.display().to_string(),
        p(d, "two.parquet"),
    ];
    let a = distill_args(&two, "11", &["--max-new-tokens", "64", "--batch-size", "2"]);
    let mut first = sdft(&a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = d.join(".two.parquet.lock");
    let start = Instant::now();
    while !lock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the first writer never locked"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    let err = fails(&a);
    assert!(
        err.contains("another process is writing this output"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "failed at once");
    first.kill().unwrap();
    first.wait().unwrap();
    // The killed writer's lock file is stale, not a lock.
    ok(&distill_args(&args, "99", &[]));
}

#[test]
fn eval_run_refuses_another_model_and_train_writes_normal_modes() {
    let dir = setup();
    let d = dir.path();
    let data = d.join("eval-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("gsm8k_test.json"),
        r#"[{"question": "w5 w6 w7", "answer": "w8\nThe answer is 3."},
            {"question": "w10 w11", "answer": "w12\nThe answer is 4."}]"#,
    )
    .unwrap();
    let model = p(d, "model");
    let train = [
        "train",
        "--model",
        &model,
        "--data",
        &p(d, "data.json"),
        "--template",
        "alpaca",
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--output",
        &p(d, "run"),
    ];
    ok(&train);
    let adapter = d.join("run/adapter");
    let mode = |f: &Path| std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
    // 0666 less the test process's umask (0022 here: 0644), not a temporary file's 0600.
    let expected = {
        // SAFETY: reads the umask and puts it back at once.
        let m = unsafe { libc::umask(0o022) };
        unsafe { libc::umask(m) };
        0o666 & !(m as u32)
    };
    assert_eq!(mode(&adapter.join("adapter_model.safetensors")), expected);
    let merged = d.join("merged");
    ok(&[
        "model",
        "merge",
        "--model",
        &model,
        "--adapter",
        &adapter.display().to_string(),
        "--output",
        &merged.display().to_string(),
    ]);
    assert_eq!(mode(&merged.join("model.safetensors")), expected);
    let converted = d.join("converted");
    ok(&["model", "convert", &model, &converted.display().to_string()]);
    assert_eq!(mode(&converted.join("model.safetensors")), expected);

    let eval = |extra: &[&str]| {
        let mut a = vec![
            "eval",
            "run",
            "--model",
            &model,
            "--benchmarks",
            "gsm8k",
            "--limit",
            "2",
            "--data-dir",
            data.to_str().unwrap(),
            "--max-new-tokens",
            "4",
            "--seed",
            "5",
            "--output",
        ];
        let out = p(d, "E");
        let mut v: Vec<String> = a.drain(..).map(String::from).collect();
        v.push(out);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |v: Vec<String>| {
        sdft(&v.iter().map(String::as_str).collect::<Vec<_>>())
            .output()
            .unwrap()
    };
    assert!(run(eval(&[])).status.success());
    let ad = adapter.display().to_string();
    let o = run(eval(&["--adapter", &ad]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("adapter_sha256 (recorded null, now"), "{err}");
    assert!(!err.contains("[0 generated]"), "{err}");
    let o = run(eval(&["--adapter", &ad, "--overwrite"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("[2 generated"), "{err}");
    let o = run(eval(&["--batch-size", "0"]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 1"));
}
