//! `cargo xtask demo [--model NAME] [--output DIR] [--data-dir DIR] [--arms ARM,...|all]`:
//! the README's main command (`--model qwen2.5-coder-0.5b-instruct` runs the Qwen2
//! demo). `--arms` picks the config's arms (default for SmolLM2: all of them,
//! vanilla, SDFT and on-policy, 34.5 minutes of stages on 2 cores; for Qwen2:
//! vanilla and sdft, whose run already takes 56.6 minutes; `all` adds the
//! on-policy arm there).
//!
//! On a fresh machine: fetches the default model (SmolLM2-135M-Instruct), finds the
//! paper's data (`--data-dir`, else `$SDFT_SHARED/data/sdft`, else a copy fetched
//! from the paper's public repository into `$SDFT_HOME/data/sdft` when reachable),
//! builds `sdft`, and runs `configs/smollm2-demo.toml` on the CPU with
//! `sdft pipeline`. The dev profile is used on purpose: it compiles dependencies and
//! the model crate optimised (see the workspace Cargo.toml), so it runs at release
//! speed and shares its build with the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sdft_assets as assets;

/// The files the demo config reads, with their path in the paper's repository.
const FILES: &[(&str, &str)] = &[
    ("gsm8k_train.json", "data/gsm8k/gsm8k_train.json"),
    ("gsm8k_test.json", "data/gsm8k/gsm8k_test.json"),
    ("multiarith_test.json", "data/multiarith_test.json"),
    (
        "openfunction_test.json",
        "data/openfunction/openfunction_test.json",
    ),
    ("harmful_behaviors.csv", "data/harmful_behaviors.csv"),
    ("alpaca_eval.json", "data/alpaca_eval.json"),
    (
        "openfunction_train.json",
        "data/openfunction/openfunction_train.json",
    ),
];

const REPO_RAW: &str = "https://raw.githubusercontent.com/sail-sg/sdft/main";

fn has_all(dir: &Path) -> bool {
    FILES.iter().all(|(f, _)| dir.join(f).is_file())
}

/// Where the data is, fetching it when it is nowhere yet.
fn data_dir(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = explicit {
        if has_all(&d) {
            return Ok(d);
        }
        bail!("--data-dir {}: expected the files {}", d.display(), names());
    }
    if let Some(d) = sdft_core::provenance::shared_data_dir() {
        if has_all(&d) {
            return Ok(d);
        }
        eprintln!(
            "xtask: SDFT_SHARED is set but {} lacks some of {}",
            d.display(),
            names()
        );
    }
    let cache = assets::sdft_home().join("data/sdft");
    if has_all(&cache) {
        return Ok(cache);
    }
    std::fs::create_dir_all(&cache)?;
    for (name, rel) in FILES {
        let dest = cache.join(name);
        if dest.is_file() {
            continue;
        }
        let url = format!("{REPO_RAW}/{rel}");
        eprintln!("xtask: fetching {url}");
        let tmp = cache.join(format!(".{name}.part"));
        let ok = Command::new("curl")
            .args(["-fsSL", "--connect-timeout", "10", "-o"])
            .arg(&tmp)
            .arg(&url)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = std::fs::remove_file(&tmp);
            bail!(
                "the demo needs the paper's data files ({}) and could not fetch {url}.\n\
                 Point it at a folder holding them: `SDFT_SHARED=/path/to/shared cargo xtask demo` \
                 (files in /path/to/shared/data/sdft/) or `cargo xtask demo --data-dir DIR`.",
                names()
            );
        }
        std::fs::rename(&tmp, &dest)?;
    }
    Ok(cache)
}

fn names() -> String {
    FILES.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
}

/// The demos: (model name, its config, the default output folder, the arms run
/// without `--arms`: every arm when the whole run fits the demo's 40 minutes on
/// 2 cores, else the two the paper compares; see each config's `[plan]`).
const DEMOS: &[(&str, &str, &str, &str)] = &[
    (
        "smollm2-135m-instruct",
        "configs/smollm2-demo.toml",
        "runs/smollm2-demo",
        "all",
    ),
    (
        "qwen2.5-coder-0.5b-instruct",
        "configs/qwen2.5-coder-demo.toml",
        "runs/qwen2.5-coder-demo",
        "vanilla,sdft",
    ),
];

pub fn run(root: &Path, cargo: Command, args: &[String]) -> Result<()> {
    let mut output = None;
    let mut explicit_data = None;
    let mut model_name = DEMOS[0].0.to_string();
    let mut arms = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--output" => output = Some(PathBuf::from(it.next().context("--output DIR")?)),
            "--data-dir" => {
                explicit_data = Some(PathBuf::from(it.next().context("--data-dir DIR")?))
            }
            "--model" => model_name = it.next().context("--model NAME")?.clone(),
            "--arms" => arms = Some(it.next().context("--arms ARM,... or all")?.clone()),
            other => bail!(
                "cargo xtask demo: unknown argument {other:?} (use --output DIR, --data-dir DIR, \
                 --model NAME, --arms ARM,...|all)"
            ),
        }
    }
    let Some(&(_, config, default_out, default_arms)) = DEMOS.iter().find(|d| d.0 == model_name)
    else {
        let known: Vec<&str> = DEMOS.iter().map(|d| d.0).collect();
        bail!(
            "cargo xtask demo --model {model_name}: no demo for it (known: {})",
            known.join(", ")
        );
    };
    // Relative to the workspace root, where `sdft pipeline` runs: the stages'
    // commands (their keys in the run's manifest) are then the same as those of
    // `sdft pipeline --config CONFIG` run by hand from the root, so either
    // continues a run the other started.
    let output = output.unwrap_or_else(|| PathBuf::from(default_out));
    let data = data_dir(explicit_data)?;
    eprintln!("xtask: data {}", data.display());
    let known = assets::KNOWN_MODELS
        .iter()
        .find(|m| m.name == model_name)
        .context("the demo's model is a known model")?;
    let model = assets::fetch_known(known)?;
    eprintln!("xtask: model {}", model.display());
    crate::run(cargo)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let sdft = target.join("debug/sdft");
    let mut cmd = Command::new(&sdft);
    cmd.current_dir(root)
        .args(["pipeline", "--config", config, "--output"])
        .arg(&output)
        .arg("--data-dir")
        .arg(&data);
    // `all`: every arm of the config.
    match arms.as_deref().unwrap_or(default_arms) {
        "all" => {}
        list => {
            cmd.args(["--arms", list]);
        }
    }
    crate::run(cmd)?;
    println!(
        "\nreport: {}",
        root.join(&output).join("report.md").display()
    );
    Ok(())
}
