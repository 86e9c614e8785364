//! [`EvalJob`]: a suite of benchmarks on one model, as `sdft eval run` runs it:
//! each benchmark with its own overrides (row limit, system message, new-token
//! limit), the knowledge benchmarks on lm-eval's raw text unless a prompt format
//! was asked for, drift against the seed where the model gives whole
//! distributions, each benchmark resumable in the run directory, which one writer
//! holds at a time.
//!
//! ```no_run
//! use sdft_core::GenerateScore;
//! use sdft_eval::bench::Benchmark;
//! use sdft_eval::job::EvalJob;
//! use sdft_eval::run::EvalOptions;
//!
//! /// ARC-Easy and drift on `model` (the in-process engine: drift needs
//! /// whole distributions).
//! fn evaluate(model: &mut dyn GenerateScore) -> sdft_eval::Result<()> {
//!     let benches = Benchmark::parse_list("arc_easy,drift")?;
//!     let job = EvalJob::new(benches, EvalOptions::new("runs/seed-eval", "data/sdft"));
//!     let mut progress = sdft_eval::run::NoProgress;
//!     job.run(model, None, &mut progress, &mut |r, _| eprintln!("{}", r.benchmark))?;
//!     Ok(())
//! }
//! ```
//!
//! `examples/eval.rs` runs a suite on a tiny model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sdft_core::provenance::{OutputLock, Settings};
use sdft_core::GenerateScore;
use sdft_data::{PromptFormat, SystemMessage};

use crate::bench::Benchmark;
use crate::drift::{run_drift, SeedModel};
use crate::harness::{self, Progress};
use crate::results::{BenchResult, ModelInfo};
use crate::run::EvalOptions;
use crate::{Error, Result};

/// A suite of benchmarks on one model (see the module docs).
#[derive(Debug, Clone)]
pub struct EvalJob {
    pub benchmarks: Vec<Benchmark>,
    /// The options every benchmark starts from.
    pub options: EvalOptions,
    /// Row limits by benchmark name, overriding `options.limit`.
    pub limits: BTreeMap<String, usize>,
    /// System messages by benchmark name, overriding `options.system_message`.
    pub system_messages: BTreeMap<String, SystemMessage>,
    /// New-token limits by benchmark name, overriding the sampling's.
    pub max_new_tokens: BTreeMap<String, usize>,
    /// Whether `options.prompt_format` was asked for; when not, the knowledge
    /// benchmarks score lm-eval's raw text (`paper`).
    pub prompt_format_given: bool,
}

impl EvalJob {
    pub fn new(benchmarks: Vec<Benchmark>, options: EvalOptions) -> Self {
        EvalJob {
            benchmarks,
            options,
            limits: BTreeMap::new(),
            system_messages: BTreeMap::new(),
            max_new_tokens: BTreeMap::new(),
            prompt_format_given: false,
        }
    }

    /// The options one benchmark runs with (the overrides applied).
    pub fn options_for(&self, b: &Benchmark) -> EvalOptions {
        let mut opts = self.options.clone();
        let name = b.name();
        if let Some(n) = self.limits.get(&name) {
            opts.limit = Some(*n);
        }
        if let Some(m) = self.system_messages.get(&name) {
            opts.system_message = *m;
        }
        if let Some(n) = self.max_new_tokens.get(&name) {
            opts.sampling.max_new_tokens = *n;
        }
        if matches!(b, Benchmark::Knowledge(_)) && !self.prompt_format_given {
            opts.prompt_format = PromptFormat::Paper;
        }
        opts
    }

    /// Refuses what cannot run before any model is loaded: HumanEval without
    /// permission to execute code, a missing data directory.
    pub fn check(&self) -> Result<()> {
        if self.benchmarks.contains(&Benchmark::HumanEval) && !self.options.allow_code_execution {
            return Err(Error::CodeExecutionNotAllowed {
                what: "humaneval".into(),
            });
        }
        if self.benchmarks.iter().any(Benchmark::needs_data_dir) && !self.options.data_dir.is_dir()
        {
            return Err(Error::File {
                path: self.options.data_dir.clone(),
                message: "not a directory (the paper's data: gsm8k_test.json, ...)".into(),
            });
        }
        Ok(())
    }

    /// Whether the suite has drift, which with an adapter needs the seed model
    /// (the same model without it) beside the evaluated one.
    pub fn has_drift(&self) -> bool {
        self.benchmarks.contains(&Benchmark::Drift)
    }

    /// Runs every benchmark in turn on `model` (drift also on `seed`, when the
    /// evaluated model is not its own seed), calling `done(result, tokens
    /// scored)` after each. Holds the run directory's lock throughout.
    pub fn run(
        &self,
        model: &mut dyn GenerateScore,
        mut seed: Option<&mut dyn SeedModel>,
        progress: &mut dyn Progress,
        done: &mut dyn FnMut(&BenchResult, u64),
    ) -> Result<Vec<BenchResult>> {
        self.check()?;
        let _lock = OutputLock::acquire(&self.options.run_dir)?;
        let mut results = Vec::with_capacity(self.benchmarks.len());
        for b in &self.benchmarks {
            let before = model.scored_tokens();
            let opts = self.options_for(b);
            let r = if *b == Benchmark::Drift {
                let Some(tuned) = model.as_distributions() else {
                    return Err(Error::Option {
                        option: "benchmark".into(),
                        value: "drift".into(),
                        message: "drift compares whole next-token distributions, which a server \
                                  does not return; run it in-process"
                            .into(),
                    });
                };
                match seed.as_deref_mut() {
                    Some(s) => run_drift(s, Some(tuned), &opts, progress)?,
                    None => run_drift(&mut AsSeed(model), None, &opts, progress)?,
                }
            } else if b.generates() {
                harness::run_generation(model.as_generator(), b, &opts, progress)?
            } else {
                harness::run_multiple_choice(model.as_scorer(), b, &opts, progress)?
            };
            done(&r, model.scored_tokens() - before);
            results.push(r);
        }
        Ok(results)
    }
}

/// A model that is its own seed (drift without an adapter).
struct AsSeed<'a>(&'a mut dyn GenerateScore);

impl SeedModel for AsSeed<'_> {
    fn as_generator(&mut self) -> &mut dyn sdft_core::Generator {
        self.0.as_generator()
    }
    fn as_distributions(&mut self) -> &mut dyn sdft_core::Distributions {
        self.0
            .as_distributions()
            .expect("checked by EvalJob::run before drift")
    }
}

/// The paper's data directory: the one given, else `$SDFT_SHARED/data/sdft`.
pub fn data_dir(given: Option<PathBuf>) -> Result<PathBuf> {
    sdft_core::provenance::data_dir(given.as_deref()).ok_or_else(|| Error::Option {
        option: "data_dir".into(),
        value: String::new(),
        message: "give the paper's data directory (--data-dir DIR) or set SDFT_SHARED".into(),
    })
}

/// HumanEval's problems: the file given, else the cached `HumanEval.jsonl.gz`
/// (fetched if missing).
pub fn humaneval_path(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => sdft_assets::fetch_humaneval().map_err(|e| Error::Asset {
            benchmark: "humaneval".into(),
            source: e,
        }),
    }
}

/// The model a run evaluated, from the settings its generator records
/// (`model_sha256`, `adapter_sha256`, `dtype`, `generator`, `served_model`,
/// `served_adapter`).
pub fn model_info(id: &str, adapter: Option<&Path>, settings: &Settings) -> ModelInfo {
    let text = |k: &str| settings.get(k).and_then(|v| v.as_str()).map(str::to_string);
    ModelInfo {
        id: id.to_string(),
        sha256: text("model_sha256"),
        adapter: adapter.map(|d| d.display().to_string()),
        adapter_sha256: text("adapter_sha256"),
        dtype: text("dtype"),
        generator: text("generator"),
        served_model: text("served_model"),
        served_adapter: text("served_adapter"),
    }
}

/// A per-benchmark option (`limits`, `system_message`, `max_new_tokens_for`):
/// `BENCH=VALUE,...`, each naming one of `benches` (`advbench` names both
/// variants); with `all_allowed`, a bare `VALUE` sets every benchmark.
pub fn per_benchmark<T: Clone>(
    option: &str,
    given: Option<&str>,
    benches: &[Benchmark],
    all_allowed: bool,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<BTreeMap<String, T>> {
    let err = |part: &str, message: String| Error::Option {
        option: option.to_string(),
        value: part.to_string(),
        message,
    };
    let selected: Vec<String> = benches.iter().map(Benchmark::name).collect();
    let mut out = BTreeMap::new();
    for part in given
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (names, value) = match part.split_once('=') {
            Some((name, value)) => {
                let name = name.trim().to_ascii_lowercase();
                let names = match name.as_str() {
                    "advbench" => vec!["advbench_raw".to_string(), "advbench_jailbreak".into()],
                    _ => vec![name],
                };
                if let Some(n) = names.iter().find(|n| !selected.contains(n)) {
                    let msg = format!(
                        "`{n}` is not among the selected benchmarks ({})",
                        selected.join(", ")
                    );
                    return Err(err(part, msg));
                }
                (names, value)
            }
            None if all_allowed => (selected.clone(), part),
            None => return Err(err(part, "expected BENCH=VALUE".into())),
        };
        let value = parse(value.trim()).map_err(|m| err(part, m))?;
        for n in names {
            out.insert(n, value.clone());
        }
    }
    Ok(out)
}

/// A parser for [`per_benchmark`]: a positive count of `what`.
pub fn positive(what: &'static str) -> impl Fn(&str) -> std::result::Result<usize, String> {
    move |v| {
        v.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{v:?} is not a positive number of {what}"))
    }
}
