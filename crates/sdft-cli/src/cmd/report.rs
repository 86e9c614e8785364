//! `sdft report RUN_DIR...`: a Markdown table of every benchmark across runs with
//! deltas against the first (printed and written to `report.md`), one grouped bar
//! chart per benchmark family, and a task-gain-vs-forgetting scatter (SVG).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use plotters::prelude::*;
use sdft_eval::compare::{paired, verdict, Paired};
use sdft_eval::report::{
    gain_vs_forgetting, lines, load_runs, markdown_table, GainForgetting, Run,
};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories (from `sdft eval run --output`); the first is the baseline.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where report.md and the SVG plots go.
    #[arg(long, default_value = "sdft-report")]
    output: PathBuf,
    /// The fine-tuning task's benchmark for the gain-vs-forgetting plot (default:
    /// the first benchmark of the first run).
    #[arg(long)]
    task: Option<String>,
    /// Seed of the paired bootstrap intervals.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// A benchmark's primary metric per run: (percent, stderr in points).
type BenchValues = (String, Vec<Option<(f64, f64)>>);

const PALETTE: [RGBColor; 6] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0xc4, 0x4e, 0x52),
    RGBColor(0x81, 0x72, 0xb3),
    RGBColor(0x93, 0x78, 0x60),
];

fn plot_err<E: std::fmt::Debug>(path: &Path) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{}: drawing the plot: {e:?}", path.display())
}

/// One grouped bar chart: the primary metric of each benchmark of a family, one
/// bar per run, with a ±1 standard error whisker.
fn bar_chart(path: &Path, family: &str, runs: &[Run], benches: &[BenchValues]) -> Result<()> {
    let root = SVGBackend::new(path, (160 + 140 * benches.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err(path))?;
    let nb = benches.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{family} (primary metric, %)"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..nb as f64, 0f64..100f64)
        .map_err(plot_err(path))?;
    let names: Vec<String> = benches.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(nb.max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (*x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc("%")
        .draw()
        .map_err(plot_err(path))?;
    let width = 0.8 / runs.len().max(1) as f64;
    for (ri, run) in runs.iter().enumerate() {
        let color = PALETTE[ri % PALETTE.len()];
        let mut bars = Vec::new();
        let mut whiskers = Vec::new();
        for (bi, (_, values)) in benches.iter().enumerate() {
            if let Some((v, se)) = values[ri] {
                let x0 = bi as f64 + 0.1 + ri as f64 * width;
                bars.push(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, v)],
                    color.filled(),
                ));
                let xm = x0 + width * 0.45;
                whiskers.push(PathElement::new(
                    vec![(xm, (v - se).max(0.0)), (xm, (v + se).min(100.0))],
                    BLACK,
                ));
            }
        }
        chart
            .draw_series(bars)
            .map_err(plot_err(path))?
            .label(run.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart.draw_series(whiskers).map_err(plot_err(path))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err(path))?;
    root.present().map_err(plot_err(path))?;
    Ok(())
}

/// Task gain (x) against forgetting (y), one labelled point per run after the
/// first, with ±1 standard error bars on both axes.
fn scatter(path: &Path, task: &str, points: &[GainForgetting]) -> Result<()> {
    let root = SVGBackend::new(path, (560, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err(path))?;
    let span = |f: fn(&GainForgetting) -> (f64, f64)| {
        let m = points
            .iter()
            .map(|p| {
                let (v, se) = f(p);
                v.abs() + se
            })
            .fold(1.0f64, f64::max)
            * 1.25;
        -m..m
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "task gain vs. forgetting (pp vs. first run, ±1 se)",
            ("sans-serif", 18),
        )
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(
            span(|p| (p.gain, p.gain_se)),
            span(|p| (p.forgetting, p.forgetting_se)),
        )
        .map_err(plot_err(path))?;
    chart
        .configure_mesh()
        .x_desc(format!("gain on {task} (pp)"))
        .y_desc("forgetting: mean drop elsewhere (pp)")
        .draw()
        .map_err(plot_err(path))?;
    for (i, p) in points.iter().enumerate() {
        let color = PALETTE[(i + 1) % PALETTE.len()];
        let (x, y) = (p.gain, p.forgetting);
        chart
            .draw_series([
                PathElement::new(vec![(x - p.gain_se, y), (x + p.gain_se, y)], color),
                PathElement::new(
                    vec![(x, y - p.forgetting_se), (x, y + p.forgetting_se)],
                    color,
                ),
            ])
            .map_err(plot_err(path))?;
        chart
            .draw_series(std::iter::once(Circle::new((x, y), 6, color.filled())))
            .map_err(plot_err(path))?;
        chart
            .draw_series(std::iter::once(Text::new(
                p.run.clone(),
                (x, y),
                ("sans-serif", 14),
            )))
            .map_err(plot_err(path))?;
    }
    root.present().map_err(plot_err(path))?;
    Ok(())
}

/// The paired comparisons section: per benchmark `b − a` with its bootstrap
/// interval, then one verdict sentence each.
pub fn paired_section(title: &str, a: &Run, b: &Run, rows: &[Paired]) -> String {
    let mut md = format!(
        "\n## {title}\n\nPer-row scores of the same rows, {b} − {a}, with a paired bootstrap 95% interval ({} resamples).\n\n| benchmark | metric | n | {a} | {b} | {b} − {a} | 95% CI |\n| --- | --- | ---: | ---: | ---: | ---: | --- |\n",
        sdft_eval::compare::RESAMPLES,
        a = a.name,
        b = b.name
    );
    for p in rows {
        let f = |x: f64| sdft_eval::compare::fmt_diff(&p.family, x);
        let lvl = |x: f64| {
            if sdft_eval::compare::in_nats(&p.family) {
                format!("{x:.4}")
            } else {
                format!("{:.1}", 100.0 * x)
            }
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} to {} |\n",
            p.benchmark,
            p.metric,
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
fn prompts_note(runs: &[sdft_eval::report::Run]) -> String {
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

pub fn run(a: ReportArgs) -> Result<ExitCode> {
    let runs = load_runs(&a.runs)?;
    let table = markdown_table(&runs);
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let mut md = String::from("# sdft report\n\nValues in percent (drift: nats per token), ± one standard error, n rows; later runs show the change against the first run. Bold: each benchmark's primary metric.\n\n");
    md.push_str(&table);
    md.push_str(&prompts_note(&runs));
    // Families of primary metrics.
    let mut families: BTreeMap<String, Vec<BenchValues>> = BTreeMap::new();
    // Bar charts of rates (0-100%); drift's divergences are in the tables.
    for l in lines(&runs)
        .into_iter()
        .filter(|l| l.primary && sdft_eval::report::is_rate(&l.family, &l.metric))
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
        let path = a.output.join(format!("family_{}.svg", file_safe(family)));
        bar_chart(&path, family, &runs, benches)?;
        plots.push(path);
    }
    let mut task_missing = false;
    if let Some(t) = &a.task {
        let known: std::collections::BTreeSet<&str> = runs
            .iter()
            .flat_map(|r| r.results.benchmarks.iter().map(|b| b.benchmark.as_str()))
            .collect();
        if !known.contains(t.as_str()) {
            // The task's own benchmark need not be evaluated: the report is still
            // made, without the gain-vs-forgetting view that needs it.
            let known: Vec<&str> = known.into_iter().collect();
            eprintln!(
                "note: --task {t}: no run has this benchmark (the runs have: {}); no gain-vs-forgetting plot",
                known.join(", ")
            );
            md.push_str(&format!(
                "\nThe task's own benchmark (`{t}`) was not evaluated, so there is no task-gain view.\n"
            ));
            task_missing = true;
        }
    }
    let task = a.task.clone().or_else(|| {
        runs[0]
            .results
            .benchmarks
            .first()
            .map(|b| b.benchmark.clone())
    });
    if let Some(task) = task.filter(|_| runs.len() > 1 && !task_missing) {
        let points = gain_vs_forgetting(&runs, &task);
        if points.is_empty() {
            eprintln!("note: no run shares `{task}` and another benchmark with the first run; no gain-vs-forgetting plot");
        } else {
            let path = a.output.join("gain_vs_forgetting.svg");
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
    // Paired comparisons: every later run against the first, and with three
    // runs (seed, vanilla, SDFT) the last two against each other.
    let mut pairs: Vec<(usize, usize)> = (1..runs.len()).map(|j| (0, j)).collect();
    if runs.len() == 3 {
        pairs.push((2, 1));
    }
    for (i, j) in pairs {
        let rows = paired(&runs[i], &runs[j], a.seed)?;
        if !rows.is_empty() {
            let title = format!("{} vs. {}", runs[j].name, runs[i].name);
            md.push_str(&paired_section(&title, &runs[i], &runs[j], &rows));
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
    let report = a.output.join("report.md");
    sdft_data::atomic::write_bytes(&report, md.as_bytes())?;
    println!("{table}");
    eprintln!(
        "wrote {} and {} plots in {}",
        report.display(),
        plots.len(),
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
