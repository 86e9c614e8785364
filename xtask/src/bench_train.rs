//! `cargo xtask bench train [--model NAME] [--compare-peft PYTHON]`: training
//! throughput of `sdft train` on a known model (`smollm2-135m-instruct` by
//! default, or `qwen2.5-coder-0.5b-instruct`; f32 on the CPU, LoRA rank 8 on q_proj
//! and v_proj, batch 2, 2 threads), from the release binary, at cutoff 256 and
//! 1024 (rows long enough that every one is cut to exactly the cutoff). Prints
//! tokens/s over the steps after the first (warm-up) one and the run's peak
//! resident memory.
//!
//! With `--compare-peft PYTHON`, the model is then converted to an HF directory
//! (`sdft model convert`) and `$SDFT_SHARED/tools/peft_train_speed.py` (default
//! `../shared`) runs on it with that interpreter (transformers + PEFT, the same
//! work at cutoff 256: batch 2 x 256, 2 threads); both figures and their ratio
//! are printed. An interpreter without torch, transformers or peft gets a
//! message, not a failure.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sdft_assets as assets;

const STEPS: usize = 5;
const CUTOFFS: [usize; 2] = [256, 1024];

/// Rows long enough that every one is cut to exactly `cutoff` tokens (up to
/// 1024).
fn write_data(path: &Path) -> Result<()> {
    let words = "the farmer sold forty eggs at the market and bought three bags of seed with \
                 the money before walking home along the river to count what was left";
    let long = vec![words; 40].join(" ");
    let row = format!("{{\"instruction\": \"{long}\", \"output\": \"{long}\"}}");
    let rows = vec![row; 2 * STEPS].join(",\n");
    std::fs::write(path, format!("[{rows}]")).with_context(|| format!("writing {}", path.display()))
}

/// Mean tokens/s over metrics rows 2.. (the first step includes warm-up).
fn throughput(metrics: &Path) -> Result<(f64, usize)> {
    let text = std::fs::read_to_string(metrics)
        .with_context(|| format!("reading {}", metrics.display()))?;
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|c| c.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    if rows.len() < 2 {
        bail!("{}: expected at least 2 steps", metrics.display());
    }
    // Columns: step, epoch, loss, lr, tokens, grad_norm, elapsed.
    let tokens: f64 = rows[1..].iter().map(|r| r[4]).sum();
    let secs = rows[rows.len() - 1][6] - rows[0][6];
    Ok((tokens / secs, rows[1][4] as usize))
}

/// What a measured child process left: its exit status, peak resident memory
/// and standard output.
struct Measured {
    success: bool,
    peak_rss_mib: f64,
    stdout: String,
}

/// Runs `cmd` to its end and reads its peak resident set size from `wait4`
/// (that process's own `ru_maxrss`, not the largest of all children so far).
fn run_measured(mut cmd: Command, capture: bool) -> Result<Measured> {
    eprintln!("xtask: running {cmd:?}");
    if capture {
        cmd.stdout(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {cmd:?}"))?;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)
            .context("reading the child's output")?;
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills; `pid` is our child, not
    // yet waited for (`child` is never waited on after this).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        bail!("waiting for {cmd:?}: {}", std::io::Error::last_os_error());
    }
    Ok(Measured {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        // Linux reports ru_maxrss in KiB.
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        stdout,
    })
}

/// Our run at `cutoff`: tokens/s, tokens per step and peak memory.
fn ours(
    bin: &Path,
    known: &assets::KnownModel,
    model: &Path,
    work: &Path,
    data: &Path,
    cutoff: usize,
) -> Result<(f64, usize, f64)> {
    let out = work.join(format!("run-{cutoff}"));
    let mut cmd = Command::new(bin);
    cmd.env("RAYON_NUM_THREADS", "2").args([
        "train",
        "--model",
        &model.display().to_string(),
        "--data",
        &data.display().to_string(),
        "--template",
        "alpaca",
        "--output",
        &out.display().to_string(),
        "--cutoff-len",
        &cutoff.to_string(),
        "--batch-size",
        "2",
        "--grad-accum",
        "1",
        "--max-steps",
        &STEPS.to_string(),
        "--lora-rank",
        "8",
        "--lora-targets",
        "q_proj,v_proj",
        "--save-steps",
        "0",
    ]);
    let m = run_measured(cmd, false)?;
    if !m.success {
        bail!("sdft train at cutoff {cutoff} failed");
    }
    let (tps, step_tokens) = throughput(&out.join("metrics.csv"))?;
    println!(
        "train: {} f32 CPU, LoRA r8 q,v, cutoff {cutoff}, batch 2 ({step_tokens} tokens/step), 2 threads: {tps:.1} tokens/s, peak RSS {:.0} MiB",
        known.name,
        m.peak_rss_mib
    );
    Ok((tps, step_tokens, m.peak_rss_mib))
}

/// The PEFT anchor script (`$SDFT_SHARED/tools/`, else `../shared/tools/`).
fn peft_script(root: &Path) -> PathBuf {
    let shared = std::env::var_os("SDFT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    shared.join("tools/peft_train_speed.py")
}

/// Runs the PEFT anchor with `python` on `bin`'s HF conversion of the model;
/// prints its tokens/s, peak memory and the ratio to `ours`. `Ok(())` with a
/// message when the interpreter or the script is missing what it needs.
fn compare_peft(
    root: &Path,
    bin: &Path,
    known: &assets::KnownModel,
    work: &Path,
    python: &str,
    ours: f64,
) -> Result<()> {
    let script = peft_script(root);
    if !script.is_file() {
        println!(
            "peft: {} not found (set SDFT_SHARED to the folder holding tools/); no comparison",
            script.display()
        );
        return Ok(());
    }
    let probe = Command::new(python)
        .args(["-c", "import torch, transformers, peft"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        println!(
            "peft: `{python}` cannot import torch, transformers and peft; no comparison (install: see {})",
            script.with_file_name("README.md").display()
        );
        return Ok(());
    }
    let hf = work.join("hf");
    let mut convert = Command::new(bin);
    convert.args(["model", "convert", known.name, &hf.display().to_string()]);
    crate::run(convert)?;
    let mut cmd = Command::new(python);
    cmd.arg(&script).arg(&hf);
    let m = run_measured(cmd, true)?;
    print!("{}", m.stdout);
    if !m.success {
        bail!("{} failed", script.display());
    }
    let peft: f64 = m
        .stdout
        .rsplit_once("tokens/s over steps 2..:")
        .and_then(|(_, v)| v.trim().parse().ok())
        .with_context(|| format!("no tokens/s in the output of {}", script.display()))?;
    println!(
        "peft: transformers + PEFT, cutoff 256, batch 2, 2 threads: {peft:.1} tokens/s, peak RSS {:.0} MiB",
        m.peak_rss_mib
    );
    println!(
        "ratio: sdft {ours:.1} / peft {peft:.1} tokens/s = {:.2}x",
        ours / peft
    );
    Ok(())
}

pub fn run(root: &Path, cargo: Command, args: &[String]) -> Result<()> {
    const USAGE: &str = "usage: cargo xtask bench train [--model NAME] [--compare-peft PYTHON]";
    let mut python = None;
    let mut known = &assets::SMOLLM2_135M_INSTRUCT;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value; {USAGE}"))?;
        match flag.as_str() {
            "--compare-peft" => python = Some(value.clone()),
            "--model" => {
                known = assets::known_model(value).with_context(|| {
                    let names: Vec<_> = assets::KNOWN_MODELS.iter().map(|m| m.name).collect();
                    format!("unknown model {value:?}; known: {}", names.join(", "))
                })?
            }
            _ => bail!("{USAGE}"),
        }
    }
    let model = assets::fetch_known(known)?;
    crate::run(cargo)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release/sdft");
    let work = std::env::temp_dir().join(format!("sdft-bench-train-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let data = work.join("data.json");
    write_data(&data)?;
    let mut at_256 = 0.0;
    for cutoff in CUTOFFS {
        let (tps, _, _) = ours(&bin, known, &model, &work, &data, cutoff)?;
        if cutoff == 256 {
            at_256 = tps;
        }
    }
    if let Some(python) = python {
        compare_peft(root, &bin, known, &work, &python, at_256)?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
