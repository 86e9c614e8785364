//! Comparing runs: a Markdown table of every benchmark across run directories with
//! deltas against the first run, and the numbers behind the report's plots.

mod document;
mod flips;
pub mod plot;

pub use document::{paired_section, write_report, write_report_against, ReportFiles, ReportNote};
pub use flips::{flips, flips_section, Flips};

use std::path::{Path, PathBuf};

use crate::results::RunResults;
use crate::{Error, Metric, Result};

/// One run directory's results, named after the directory.
#[derive(Debug, Clone)]
pub struct Run {
    pub name: String,
    pub dir: PathBuf,
    pub results: RunResults,
}

/// Reads `DIR/results.json` of each run directory.
pub fn load_runs(dirs: &[PathBuf]) -> Result<Vec<Run>> {
    if dirs.is_empty() {
        return Err(Error::InvalidArgument {
            name: "runs",
            value: "none".into(),
            expected: "at least one run directory",
        });
    }
    dirs.iter()
        .map(|d| {
            let path = d.join("results.json");
            if !path.is_file() {
                return Err(Error::file(
                    &path,
                    "missing: expected the results of `sdft eval run --output DIR`",
                ));
            }
            Ok(Run {
                name: run_name(d),
                dir: d.clone(),
                results: RunResults::read(&path)?,
            })
        })
        .collect()
}

fn run_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != ".")
        .unwrap_or_else(|| dir.display().to_string())
}

/// One row of the comparison: a benchmark's metric in every run.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub benchmark: String,
    pub family: String,
    pub metric: String,
    pub primary: bool,
    /// One entry per run (None where the run lacks it).
    pub values: Vec<Option<Metric>>,
}

/// Every (benchmark, metric) pair found in any run, benchmarks in first-seen order,
/// each benchmark's primary metric first. Per-subject multiple-choice metrics
/// (`acc:<subject>`) are left out of the table.
pub fn lines(runs: &[Run]) -> Vec<Line> {
    let mut keys: Vec<(String, String, String, bool)> = Vec::new();
    for r in runs {
        for b in &r.results.benchmarks {
            let mut names: Vec<&String> = b.metrics.keys().filter(|k| !k.contains(':')).collect();
            names.sort_by_key(|k| Some(*k) != b.primary.as_ref());
            for m in names {
                if !keys.iter().any(|k| k.0 == b.benchmark && &k.2 == m) {
                    let primary = Some(m) == b.primary.as_ref();
                    let at = keys
                        .iter()
                        .rposition(|k| k.0 == b.benchmark)
                        .map(|i| i + 1)
                        .unwrap_or(keys.len());
                    keys.insert(
                        at,
                        (b.benchmark.clone(), b.family.clone(), m.clone(), primary),
                    );
                }
            }
        }
    }
    keys.into_iter()
        .map(|(benchmark, family, metric, primary)| {
            let values = runs
                .iter()
                .map(|r| {
                    r.results
                        .get(&benchmark)
                        .and_then(|b| b.metrics.get(&metric))
                        .copied()
                })
                .collect();
            Line {
                benchmark,
                family,
                metric,
                primary,
                values,
            }
        })
        .collect()
}

/// Whether a metric is a rate shown in percent (everything but the drift
/// benchmark's divergences and task fit's log-probabilities, in nats per token).
pub fn is_rate(family: &str, metric: &str) -> bool {
    !((family == "drift" && metric.starts_with("kl"))
        || (family == "task fit" && metric.contains("logprob")))
}

/// A metric as the table shows it: `52.3 ± 2.1 (n=570)` in percent for rates,
/// `0.0123 ± 0.0010 (n=64)` in nats per token for divergences.
pub fn fmt_metric(family: &str, metric: &str, m: &Metric) -> String {
    if is_rate(family, metric) {
        format!("{:.1} ± {:.1} (n={})", m.percent(), 100.0 * m.stderr, m.n)
    } else {
        format!("{:.4} ± {:.4} (n={})", m.value, m.stderr, m.n)
    }
}

/// The Markdown table: values in percent with their standard error and n; later
/// runs also show the difference to the first run in percentage points.
/// A rate with its credit sum as the paper's scripts print it, e.g.
/// `acc: 45.25% ± 3.28 (n=64; 28.96 / 64)`.
pub fn credit_line(name: &str, m: &Metric) -> String {
    format!(
        "{name}: {:.2}% ± {:.2} (n={}; {} / {})",
        m.percent(),
        100.0 * m.stderr,
        m.n,
        (m.value * m.n as f64 * 100.0).round() / 100.0,
        m.n
    )
}

/// One line per finished benchmark: its primary metric (rates in percent,
/// divergences and log-probabilities in nats per token), rows generated, time.
pub fn summary_line(r: &crate::results::BenchResult) -> String {
    let name = r.primary.as_deref().unwrap_or("");
    let head = match r.primary_metric() {
        Some(m) if !is_rate(&r.family, name) => {
            format!("{name}: {} nats/token", fmt_metric(&r.family, name, m))
        }
        Some(m) => credit_line(name, m),
        None => format!("{} rows (no metric)", r.n),
    };
    format!(
        "{}: {head}  [{} generated, {:.1}s]",
        r.benchmark, r.generated, r.wall_secs
    )
}

pub fn markdown_table(runs: &[Run]) -> String {
    let mut s = String::from("| benchmark | metric |");
    for r in runs {
        s.push_str(&format!(" {} |", r.name));
    }
    s.push_str("\n| --- | --- |");
    s.push_str(&" ---: |".repeat(runs.len()));
    s.push('\n');
    for l in lines(runs) {
        let arrow = crate::metric_names::direction(&l.family, &l.metric);
        let metric = if l.primary {
            format!("**{}** {arrow}", l.metric)
        } else {
            format!("{} {arrow}", l.metric)
        };
        s.push_str(&format!("| {} | {} |", l.benchmark, metric));
        let base = l.values.first().copied().flatten();
        for (i, v) in l.values.iter().enumerate() {
            match v {
                None => s.push_str(" - |"),
                Some(m) => {
                    let mut cell = fmt_metric(&l.family, &l.metric, m);
                    if let (true, Some(b)) = (i > 0, base) {
                        if is_rate(&l.family, &l.metric) {
                            cell.push_str(&format!(" {:+.1}", m.percent() - b.percent()));
                        } else {
                            cell.push_str(&format!(" {:+.4}", m.value - b.value));
                        }
                    }
                    s.push_str(&format!(" {cell} |"));
                }
            }
        }
        s.push('\n');
    }
    s
}

/// One run's task gain and forgetting against the first run, in percentage
/// points, each with a standard error.
#[derive(Debug, Clone, PartialEq)]
pub struct GainForgetting {
    pub run: String,
    pub gain: f64,
    pub gain_se: f64,
    pub forgetting: f64,
    pub forgetting_se: f64,
    /// The benchmarks averaged into `forgetting`.
    pub benchmarks: usize,
}

/// Task gain and forgetting of each run after the first, in percentage points:
/// gain is the change of `task`'s primary metric; forgetting is minus the mean
/// change of the other benchmarks' primary metrics (positive = worse than the
/// first run; the drift benchmark, not a score, is left out). Standard errors
/// treat the two runs' estimates as independent: `sqrt(se₀² + se₁²)` for a
/// change, and for the mean of K changes `sqrt(Σ (se₀² + se₁²)) / K`. Runs
/// lacking `task` or any other shared benchmark are left out.
pub fn gain_vs_forgetting(runs: &[Run], task: &str) -> Vec<GainForgetting> {
    let prim = |r: &Run, b: &str| {
        r.results
            .get(b)
            .and_then(|x| x.primary_metric())
            .map(|m| (m.percent(), 100.0 * m.stderr))
    };
    let Some(first) = runs.first() else {
        return vec![];
    };
    let others: Vec<&str> = first
        .results
        .benchmarks
        .iter()
        .filter(|b| {
            b.benchmark != task
                && is_rate(&b.family, b.primary.as_deref().unwrap_or(""))
                && b.primary_metric().is_some()
        })
        .map(|b| b.benchmark.as_str())
        .collect();
    let mut out = Vec::new();
    for r in &runs[1..] {
        let (Some(t0), Some(t1)) = (prim(first, task), prim(r, task)) else {
            continue;
        };
        let deltas: Vec<(f64, f64)> = others
            .iter()
            .filter_map(|b| {
                let (x0, s0) = prim(first, b)?;
                let (x1, s1) = prim(r, b)?;
                Some((x1 - x0, s0 * s0 + s1 * s1))
            })
            .collect();
        if deltas.is_empty() {
            continue;
        }
        let k = deltas.len() as f64;
        out.push(GainForgetting {
            run: r.name.clone(),
            gain: t1.0 - t0.0,
            gain_se: (t0.1 * t0.1 + t1.1 * t1.1).sqrt(),
            forgetting: -deltas.iter().map(|d| d.0).sum::<f64>() / k,
            forgetting_se: deltas.iter().map(|d| d.1).sum::<f64>().sqrt() / k,
            benchmarks: deltas.len(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{BenchConfig, BenchResult, Hashes, ModelInfo};

    fn bench(name: &str, primary: &str, v: f64, extra: Option<f64>) -> BenchResult {
        let mut metrics = std::collections::BTreeMap::new();
        metrics.insert(
            primary.to_string(),
            Metric {
                value: v,
                stderr: 0.01,
                n: 100,
            },
        );
        if let Some(e) = extra {
            metrics.insert(
                "aaa_alt".to_string(),
                Metric {
                    value: e,
                    stderr: 0.0,
                    n: 100,
                },
            );
        }
        BenchResult {
            benchmark: name.into(),
            family: "f".into(),
            primary: Some(primary.into()),
            n: 100,
            metrics,
            config: BenchConfig {
                template: "t".into(),
                prompt_format: sdft_data::PromptFormat::Paper,
                template_hash: String::new(),
                sampling: Default::default(),
                limit: None,
                seed: 42,
                samples: 1,
                num_fewshot: None,
                system_message: Default::default(),
            },
            hashes: Hashes {
                data_path: "d".into(),
                data_sha256: "h".into(),
                model: ModelInfo::default(),
            },
            generated: 0,
            wall_secs: 1.0,
        }
    }

    fn run(name: &str, b: Vec<BenchResult>) -> Run {
        Run {
            name: name.into(),
            dir: name.into(),
            results: RunResults {
                benchmarks: b,
                ..Default::default()
            },
        }
    }

    #[test]
    fn summary_lines_show_rates_in_percent_and_log_probabilities_in_nats() {
        let mut ll = bench("gsm8k_ll", "logprob", -1.3399, None);
        ll.family = "task fit".into();
        let line = summary_line(&ll);
        assert!(
            line.starts_with("gsm8k_ll: logprob: -1.3399 ± 0.0100 (n=100) nats/token"),
            "{line}"
        );
        let mut acc = bench("arc_easy", "acc", 0.4525, None);
        acc.family = "knowledge".into();
        let line = summary_line(&acc);
        assert!(
            line.starts_with("arc_easy: acc: 45.25% ± 1.00 (n=100; 45.25 / 100)"),
            "{line}"
        );
    }

    #[test]
    fn table_and_gain_vs_forgetting() {
        let runs = vec![
            run(
                "seed",
                vec![
                    bench("gsm8k", "accuracy", 0.20, Some(0.1)),
                    bench("humaneval", "pass@1", 0.10, None),
                ],
            ),
            run(
                "sdft",
                vec![
                    bench("gsm8k", "accuracy", 0.30, None),
                    bench("humaneval", "pass@1", 0.08, None),
                ],
            ),
        ];
        let t = markdown_table(&runs);
        assert!(
            t.contains(
                "| gsm8k | **accuracy** ↑ | 20.0 ± 1.0 (n=100) | 30.0 ± 1.0 (n=100) +10.0 |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| gsm8k | aaa_alt ↑ | 10.0 ± 0.0 (n=100) | - |"),
            "{t}"
        );
        assert!(
            t.contains(
                "| humaneval | **pass@1** ↑ | 10.0 ± 1.0 (n=100) | 8.0 ± 1.0 (n=100) -2.0 |"
            ),
            "{t}"
        );
        // primary rows come first within a benchmark
        assert!(t.find("**accuracy**").unwrap() < t.find("aaa_alt").unwrap());
        let g = gain_vs_forgetting(&runs, "gsm8k");
        assert_eq!(g.len(), 1);
        assert!(
            (g[0].gain - 10.0).abs() < 1e-9 && (g[0].forgetting - 2.0).abs() < 1e-9,
            "{g:?}"
        );
        // One point of stderr in each run: sqrt(1 + 1) for a change.
        assert!((g[0].gain_se - 2f64.sqrt()).abs() < 1e-9, "{g:?}");
        assert!((g[0].forgetting_se - 2f64.sqrt()).abs() < 1e-9, "{g:?}");
    }
}
