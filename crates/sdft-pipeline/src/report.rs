//! The pipeline's report: the comparison report of the seed's and the arms' evaluations
//! ([`sdft_eval::report::write_report`]: table, paired comparisons, plots), then the distillation summary, the distribution gap, the stage timings
//! and the run's provenance.

use std::fmt::Write as _;
use std::path::Path;

use sdft_distill::Summary;

use crate::arms::Arm;
use crate::stage::RunManifest;
use crate::{Error, Result};

/// The benchmark that measures the fine-tuning task itself (the x axis of the
/// gain-vs-forgetting plot), for the tasks that have one.
fn task_benchmark(task: &str) -> Option<&'static str> {
    match task {
        "gsm8k" => Some("gsm8k"),
        "multiarith" => Some("multiarith"),
        "openfunctions" | "openfunction" => Some("openfunctions"),
        "magicoder" => Some("humaneval"),
        _ => None,
    }
}

/// Writes `RUN/report.md` (and the plots) for a run whose stages are done:
/// the seed and every arm, each arm compared with the seed and with the
/// `baseline` arm; `stages` are the stage names in the order they ran, `wall` is
/// this invocation's time. Returns the report's notes (views left out).
pub fn write(
    run: &Path,
    manifest: &RunManifest,
    task: &str,
    arms: &[Arm],
    baseline: &str,
    stages: &[String],
    wall: f64,
) -> Result<Vec<sdft_eval::report::ReportNote>> {
    let mut evals = vec![run.join("eval-seed")];
    evals.extend(arms.iter().map(|a| run.join(format!("eval-{}", a.name))));
    let base = arms.iter().position(|a| a.name == baseline).map(|i| i + 1);
    let files =
        sdft_eval::report::write_report_against(&evals, run, task_benchmark(task), 42, base)?;
    let path = files.report;
    let mut text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Arms\n\nEach arm is a LoRA run from the seed; `eval-NAME` evaluates it. Baseline: `{baseline}`.\n\n| arm | what | settings over [train] |\n| --- | --- | --- |"
    );
    for a in arms {
        let settings: Vec<String> = a
            .train
            .iter()
            .map(|(k, v)| format!("`{k} = {v}`"))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            a.name,
            a.describe(),
            settings.join(", ")
        );
    }
    let summary_path = Summary::path_for(&run.join("distill/distilled.parquet"));
    if let Ok(sum) = Summary::load(&summary_path) {
        let _ = writeln!(s, "\n## Self-distillation\n\n```text\n{}```", sum.render());
        if let Some(g) = &sum.gap {
            let _ = write!(s, "\n{}", g.markdown());
        }
    }
    let _ = writeln!(s, "\n## Stages\n\n| stage | seconds |\n| --- | ---: |");
    let mut total = 0.0;
    for name in stages {
        if let Some(r) = manifest.stages.get(name) {
            let _ = writeln!(s, "| {name} | {:.1} |", r.seconds);
            total += r.seconds;
        }
    }
    let _ = writeln!(
        s,
        "| **all stages** | **{total:.1}** ({:.1} minutes) |",
        total / 60.0
    );
    let _ = writeln!(s, "\nThis invocation's wall time: {wall:.1}s.");
    let _ = writeln!(
        s,
        "\n## Provenance\n\n- config: sha256 {}\n- model: {} (sha256 {})\n- data: {} (sha256 {})\n\
         - templates: distill `{}`, train `{}`\n- seed: {}\n- sdft {}{}\n\nSee `manifest.json` for every stage's command.",
        manifest.config_sha256,
        manifest.model,
        manifest.model_sha256,
        manifest.data.display(),
        manifest.data_sha256,
        manifest.distill_template,
        manifest.train_template,
        manifest.seed,
        manifest.crate_version,
        manifest
            .git_commit
            .as_deref()
            .map(|c| format!(" (commit {c})"))
            .unwrap_or_default()
    );
    text.push_str(&s);
    sdft_data::atomic::write_bytes(&path, text.as_bytes())?;
    Ok(files.notes)
}
