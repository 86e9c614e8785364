//! `cargo xtask bench train`: training throughput of `sdft train` on
//! SmolLM2-135M-Instruct (f32 on the CPU, LoRA rank 8 on q_proj and v_proj,
//! sequences of exactly 256 tokens, batch 2, 2 threads), from the release binary.
//! Prints tokens/s over the steps after the first (warm-up) one.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sdft_assets as assets;

const STEPS: usize = 5;

/// Rows long enough that every one is cut to exactly `cutoff` tokens.
fn write_data(path: &Path) -> Result<()> {
    let words = "the farmer sold forty eggs at the market and bought three bags of seed with \
                 the money before walking home along the river to count what was left";
    let long = vec![words; 20].join(" ");
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

pub fn run(root: &Path, cargo: Command) -> Result<()> {
    let model = assets::fetch_known(&assets::SMOLLM2_135M_INSTRUCT)?;
    crate::run(cargo)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release/sdft");
    let work = std::env::temp_dir().join(format!("sdft-bench-train-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let data = work.join("data.json");
    write_data(&data)?;
    let out = work.join("run");
    let mut cmd = Command::new(&bin);
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
        "256",
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
    crate::run(cmd)?;
    let (tps, step_tokens) = throughput(&out.join("metrics.csv"))?;
    println!(
        "train: SmolLM2-135M-Instruct f32 CPU, LoRA r8 q,v, seq 256, batch 2 ({step_tokens} tokens/step), 2 threads: {tps:.1} tokens/s"
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
