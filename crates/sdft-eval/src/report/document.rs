//! The comparison report of eval runs as a document: `report.md` with the runs'
//! table, the paired comparisons and their verdicts, the gain-vs-forgetting view
//! and the plots ([`super::plot`]), as `sdft report` writes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::plot::{bar_chart, scatter, BenchValues};
use super::{gain_vs_forgetting, lines, load_runs, markdown_table, Run};
use crate::compare::{paired_scores, shared_scores, verdict, Paired};
use crate::{Error, Result};

/// The paired comparisons section: per benchmark `b − a` with its bootstrap
/// interval, then one verdict sentence each.
pub fn paired_section(title: &str, a: &Run, b: &Run, rows: &[Paired]) -> String {
    let mut md = format!(
        "\n## {title}\n\nPer-row scores of the same rows, {b} − {a}, with a paired bootstrap 95% interval ({} resamples).\n\n| benchmark | metric | n | {a} | {b} | {b} − {a} | 95% CI |\n| --- | --- | ---: | ---: | ---: | ---: | --- |\n",
        crate::compare::RESAMPLES,
        a = a.name,
        b = b.name
    );
    for p in rows {
        let f = |x: f64| crate::compare::fmt_diff(&p.family, x);
        let lvl = |x: f64| {
            if crate::metric_names::in_nats(&p.family) {
                format!("{x:.4}")
            } else {
                format!("{:.1}", 100.0 * x)
            }
        };
        md.push_str(&format!(
            "| {} | {} {} | {} | {} | {} | {} | {} to {} |\n",
            p.benchmark,
            p.metric,
            crate::compare::direction(&p.family, &p.metric),
            p.n,
            lvl(p.mean_a),
            lvl(p.mean_b),
            f(p.diff),
            f(p.lo),
            f(p.hi)
        ));
    }
    md.push('\n');
    for p in rows {
        md.push_str(&format!("- {}\n", verdict(p, &a.name, &b.name)));
    }
    md
}

/// Which system message the generation benchmarks' prompts carried, where any
/// differs from the preset's (the setting changes what a safety probe measures).
fn prompts_note(runs: &[crate::report::Run]) -> String {
    let mut by_mode: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in runs.iter().flat_map(|r| &r.results.benchmarks) {
        let names = by_mode
            .entry(b.config.system_message.as_str().to_string())
            .or_default();
        if !names.contains(&b.benchmark) {
            names.push(b.benchmark.clone());
        }
    }
    if by_mode.keys().all(|m| m == "preset") {
        return String::new();
    }
    let what = |m: &str| match m {
        "model" => "the model's own default system message (`--system-message model`)",
        "none" => "no system message (`--system-message none`)",
        _ => "the template preset's system text",
    };
    let mut out = String::from("\nSystem messages: ");
    let parts: Vec<String> = by_mode
        .iter()
        .map(|(m, names)| format!("{} under {}", names.join(", "), what(m)))
        .collect();
    out.push_str(&parts.join("; "));
    out.push_str(".\n");
    out
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `report.md`.
    pub report: PathBuf,
    pub plots: Vec<PathBuf>,
    /// The runs' Markdown table (also at the top of the report).
    pub table: String,
    /// What the report could not show, and why.
    pub notes: Vec<ReportNote>,
}

/// A view the report leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportNote {
    /// The task's benchmark is in no run: no gain-vs-forgetting view.
    TaskNotEvaluated { task: String, known: Vec<String> },
    /// No later run shares the task and another benchmark with the first.
    NoSharedBenchmark { task: String },
}

impl std::fmt::Display for ReportNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportNote::TaskNotEvaluated { task, known } => write!(
                f,
                "task {task}: no run has this benchmark (the runs have: {}); no gain-vs-forgetting plot",
                known.join(", ")
            ),
            ReportNote::NoSharedBenchmark { task } => write!(
                f,
                "no run shares `{task}` and another benchmark with the first run; no gain-vs-forgetting plot"
            ),
        }
    }
}

/// The comparison report of eval run directories (the first is the seed):
/// [`write_report_against`] with, for three runs (seed, vanilla, SDFT), the
/// second as the baseline of the third.
pub fn write_report(
    run_dirs: &[PathBuf],
    output: &Path,
    task: Option<&str>,
    seed: u64,
) -> Result<ReportFiles> {
    let baseline = (run_dirs.len() == 3).then_some(1);
    write_report_against(run_dirs, output, task, seed, baseline)
}

/// The comparison report of eval run directories (the first is the seed):
/// `report.md` in `output` with the table of every benchmark and its deltas, the
/// system-message note, the task-gain-vs-forgetting table for `task` (none without
/// one: a fine-tuning task without a benchmark of its own has no gain to plot),
/// the paired comparisons (every later run against
/// the first, and every other run against the run at index `baseline`, as
/// baseline − run; bootstrap seeded by `seed`) with each pair's per-item flips,
/// and the plots.
pub fn write_report_against(
    run_dirs: &[PathBuf],
    output: &Path,
    task: Option<&str>,
    seed: u64,
    baseline: Option<usize>,
) -> Result<ReportFiles> {
    let mut notes = Vec::new();
    let runs = load_runs(run_dirs)?;
    let table = markdown_table(&runs);
    std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    let mut md = String::from("# sdft report\n\nValues in percent (drift: nats per token), ± one standard error, n rows; later runs show the change against the first run. Bold: each benchmark's primary metric; ↑ higher is better, ↓ lower is better.\n\n");
    md.push_str(&table);
    md.push_str(&prompts_note(&runs));
    // Families of primary metrics.
    let mut families: BTreeMap<String, Vec<BenchValues>> = BTreeMap::new();
    // Bar charts of rates (0-100%); drift's divergences are in the tables.
    for l in lines(&runs)
        .into_iter()
        .filter(|l| l.primary && crate::report::is_rate(&l.family, &l.metric))
    {
        let values = l
            .values
            .iter()
            .map(|v| v.map(|m| (m.percent(), 100.0 * m.stderr)))
            .collect();
        families
            .entry(l.family.clone())
            .or_default()
            .push((l.benchmark.clone(), values));
    }
    let mut plots = Vec::new();
    for (family, benches) in &families {
        let path = output.join(format!("family_{}.svg", file_safe(family)));
        bar_chart(&path, family, &runs, benches)?;
        plots.push(path);
    }
    let mut task_missing = false;
    if let Some(t) = task {
        let known: std::collections::BTreeSet<&str> = runs
            .iter()
            .flat_map(|r| r.results.benchmarks.iter().map(|b| b.benchmark.as_str()))
            .collect();
        if !known.contains(t) {
            // The task's own benchmark need not be evaluated: the report is still
            // made, without the gain-vs-forgetting view that needs it.
            let known: Vec<&str> = known.into_iter().collect();
            notes.push(ReportNote::TaskNotEvaluated {
                task: t.to_string(),
                known: known.iter().map(|k| k.to_string()).collect(),
            });
            md.push_str(&format!(
                "\nThe task's own benchmark (`{t}`) was not evaluated, so there is no task-gain view.\n"
            ));
            task_missing = true;
        }
    }
    if let Some(task) = task.filter(|_| runs.len() > 1 && !task_missing) {
        let task = task.to_string();
        let points = gain_vs_forgetting(&runs, &task);
        if points.is_empty() {
            notes.push(ReportNote::NoSharedBenchmark { task: task.clone() });
        } else {
            let path = output.join("gain_vs_forgetting.svg");
            scatter(&path, &task, &points)?;
            plots.push(path);
            md.push_str(&format!("\n## Task gain vs. forgetting (task: {task})\n\n| run | gain (pp) | forgetting (pp) | benchmarks |\n| --- | ---: | ---: | ---: |\n"));
            for p in &points {
                md.push_str(&format!(
                    "| {} | {:+.1} ± {:.1} | {:+.1} ± {:.1} | {} |\n",
                    p.run, p.gain, p.gain_se, p.forgetting, p.forgetting_se, p.benchmarks
                ));
            }
        }
    }
    // Paired comparisons: every later run against the first (the seed), and
    // every other run against the baseline.
    let mut pairs: Vec<(usize, usize)> = (1..runs.len()).map(|j| (0, j)).collect();
    if let Some(b) = baseline.filter(|&b| b > 0 && b < runs.len()) {
        pairs.extend((1..runs.len()).filter(|&j| j != b).map(|j| (j, b)));
    }
    for (i, j) in pairs {
        let shared = shared_scores(&runs[i], &runs[j])?;
        let rows = paired_scores(&shared, seed);
        if !rows.is_empty() {
            let title = format!("{} vs. {}", runs[j].name, runs[i].name);
            md.push_str(&paired_section(&title, &runs[i], &runs[j], &rows));
            let f = super::flips::flips_of(&shared);
            md.push_str(&super::flips_section(&runs[i], &runs[j], &f));
        }
    }
    if !plots.is_empty() {
        md.push_str("\n## Plots\n\n");
        for p in &plots {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            md.push_str(&format!("![{name}]({name})\n"));
        }
    }
    let report = output.join("report.md");
    sdft_data::atomic::write_bytes(&report, md.as_bytes())?;
    Ok(ReportFiles {
        report,
        plots,
        table,
        notes,
    })
}
