//! Multiple choice (MMLU, ARC, HellaSwag style) by log-likelihood, following
//! lm-evaluation-harness: each choice is scored as a continuation of the context;
//! `acc` takes the choice with the highest log-likelihood, `acc_norm` the highest
//! log-likelihood divided by the choice text's length in characters (Python's
//! `len`, as lm-eval's `process_results` divides).
//!
//! ## Input schema (JSONL, JSON array, or Parquet; one row per question)
//!
//! | field | type | meaning |
//! | --- | --- | --- |
//! | `question` | string | the question (required) |
//! | `choices` | list of strings | the candidate answers (required, at least 2) |
//! | `answer` | integer, or a letter `A`.. | the index of the correct choice, 0-based (required) |
//! | `subject` | string | optional; adds an `acc:<subject>` metric per subject |
//! | `id` | string or integer | optional; default `row-N` |
//! | `prompt` | string | optional; the full context, replacing the default |
//!
//! The default context is `"Question: {question}\nAnswer:"` and each continuation
//! is `" {choice}"` (lm-eval's ARC format, with its one-space target delimiter).

use std::collections::BTreeMap;
use std::path::Path;

use sdft_core::{Prompt, PromptPiece, ScoreRequest, Scorer};
use serde_json::Value;

use crate::{Error, Metric, Result};

/// One multiple-choice question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McItem {
    pub id: String,
    pub question: String,
    pub choices: Vec<String>,
    pub answer: usize,
    pub subject: Option<String>,
    /// The context the choices continue.
    pub context: String,
}

fn answer_index(v: &Value, n: usize) -> Option<usize> {
    let i = match v {
        Value::Number(x) => x.as_u64()? as usize,
        Value::String(s) if s.len() == 1 && s.as_bytes()[0].is_ascii_uppercase() => {
            (s.as_bytes()[0] - b'A') as usize
        }
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (i < n).then_some(i)
}

/// Reads multiple-choice rows (see the module docs); errors name the file, the
/// 1-based row and the field.
pub fn read_mc(path: &Path) -> Result<Vec<McItem>> {
    let records = sdft_data::read_records(path, None)?;
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.rows.iter().enumerate() {
        let row = i + 1;
        let bad = |what: &str, found: String| Error::row(path, row, what, found);
        let Some(r) = r else {
            return Err(bad("a JSON object", "something else".into()));
        };
        let kind = |k: &str| {
            r.get(k)
                .map(sdft_data::value_kind)
                .unwrap_or("nothing")
                .to_string()
        };
        let question = r
            .get("question")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("`question`: a string", kind("question")))?;
        let choices: Vec<String> = r
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|c| c.as_str().map(str::to_string)).collect())
            .ok_or_else(|| bad("`choices`: a list of strings", kind("choices")))?;
        if choices.len() < 2 {
            return Err(bad(
                "`choices`: at least 2 choices",
                choices.len().to_string(),
            ));
        }
        let answer = r
            .get("answer")
            .and_then(|v| answer_index(v, choices.len()))
            .ok_or_else(|| {
                bad(
                    "`answer`: a 0-based choice index (or a letter A..) within the choices",
                    r.get("answer")
                        .map(|v| v.to_string())
                        .unwrap_or("nothing".into()),
                )
            })?;
        let id = match r.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => format!("row-{row}"),
        };
        let context = match r.get("prompt").and_then(Value::as_str) {
            Some(p) => p.to_string(),
            None => format!("Question: {question}\nAnswer:"),
        };
        out.push(McItem {
            id,
            question: question.to_string(),
            choices,
            answer,
            subject: r.get("subject").and_then(Value::as_str).map(str::to_string),
            context,
        });
    }
    if out.is_empty() {
        return Err(Error::file(
            path,
            "no rows: expected multiple-choice questions",
        ));
    }
    Ok(out)
}

/// The scoring requests of an item, one per choice.
pub fn requests(item: &McItem, bos: bool) -> Vec<ScoreRequest> {
    item.choices
        .iter()
        .map(|c| {
            let mut prompt = Prompt::default();
            if bos {
                prompt.push(PromptPiece::Bos);
            }
            prompt.push(PromptPiece::Text(item.context.clone()));
            ScoreRequest {
                prompt,
                continuation: Prompt::raw(format!(" {c}")),
            }
        })
        .collect()
}

/// What the model chose for one item.
#[derive(Debug, Clone, PartialEq)]
pub struct McOutcome {
    pub loglik: Vec<f64>,
    /// Argmax of the log-likelihoods (first on ties, as numpy's argmax).
    pub pred: usize,
    /// Argmax of the log-likelihoods over character lengths.
    pub pred_norm: usize,
}

fn argmax(v: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in v.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// The `acc` and `acc_norm` answers for per-choice log-likelihoods: the argmax of
/// the log-likelihoods, and of the log-likelihoods over the choices' lengths in
/// characters (Python `len`, at least 1); the first on ties, as numpy's argmax.
/// The one rule for `mc:FILE` and the knowledge benchmarks.
pub(crate) fn choose<S: AsRef<str>>(loglik: &[f64], choices: &[S]) -> (usize, usize) {
    let pred = argmax(loglik.iter().copied());
    let pred_norm = argmax(
        loglik
            .iter()
            .zip(choices)
            .map(|(l, c)| l / c.as_ref().chars().count().max(1) as f64),
    );
    (pred, pred_norm)
}

/// Picks `acc` and `acc_norm` answers from per-choice log-likelihoods.
pub fn decide(item: &McItem, loglik: Vec<f64>) -> McOutcome {
    let (pred, pred_norm) = choose(&loglik, &item.choices);
    McOutcome {
        loglik,
        pred,
        pred_norm,
    }
}

/// Scores every item with `scorer` in chunks of `chunk` requests, calling
/// `progress(items_done)`.
pub fn evaluate(
    scorer: &mut dyn Scorer,
    items: &[McItem],
    bos: bool,
    chunk: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<McOutcome>> {
    let mut out = Vec::with_capacity(items.len());
    let per = chunk.max(1);
    for group in items.chunks(per) {
        let reqs: Vec<ScoreRequest> = group.iter().flat_map(|it| requests(it, bos)).collect();
        let scores = scorer.score(&reqs).map_err(|e| Error::Model {
            benchmark: "multiple choice".into(),
            source: e,
        })?;
        if scores.len() != reqs.len() {
            return Err(Error::CountMismatch {
                benchmark: "multiple choice".into(),
                expected: reqs.len(),
                got: scores.len(),
            });
        }
        let mut k = 0;
        for it in group {
            let ll = scores[k..k + it.choices.len()]
                .iter()
                .map(|s| s.sum_logprob)
                .collect();
            k += it.choices.len();
            out.push(decide(it, ll));
        }
        progress(out.len());
    }
    Ok(out)
}

/// `acc`, `acc_norm` and `acc:<subject>` over items and their outcomes.
pub fn metrics(items: &[McItem], outcomes: &[McOutcome]) -> BTreeMap<String, Metric> {
    let acc: Vec<f64> = items
        .iter()
        .zip(outcomes)
        .map(|(i, o)| f64::from(u8::from(o.pred == i.answer)))
        .collect();
    let norm: Vec<f64> = items
        .iter()
        .zip(outcomes)
        .map(|(i, o)| f64::from(u8::from(o.pred_norm == i.answer)))
        .collect();
    let mut m = BTreeMap::new();
    m.insert("acc".to_string(), Metric::from_scores(&acc));
    m.insert("acc_norm".to_string(), Metric::from_scores(&norm));
    let mut by_subject: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (i, a) in items.iter().zip(&acc) {
        if let Some(s) = &i.subject {
            by_subject.entry(s).or_default().push(*a);
        }
    }
    for (s, v) in by_subject {
        m.insert(format!("acc:{s}"), Metric::from_scores(&v));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdft_core::Score;

    /// Log-likelihood = -(number of bytes not in "blue sky") for a toy scorer.
    struct Toy;
    impl Scorer for Toy {
        fn score(&mut self, r: &[ScoreRequest]) -> sdft_core::Result<Vec<Score>> {
            Ok(r.iter()
                .map(|q| {
                    let t = q.continuation.text();
                    let hits = t.chars().filter(|c| "blue sky".contains(*c)).count();
                    Score {
                        sum_logprob: hits as f64 - t.len() as f64,
                        tokens: 1,
                    }
                })
                .collect())
        }
    }

    #[test]
    fn acc_and_acc_norm_on_a_tiny_set() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mc.jsonl");
        std::fs::write(
            &p,
            concat!(
                r#"{"question": "Sky colour?", "choices": ["blue", "green"], "answer": 0, "subject": "a"}"#, "\n",
                r#"{"question": "Q2", "choices": ["xx", "blue sky!"], "answer": "B", "subject": "b"}"#, "\n",
                r#"{"id": 7, "question": "Q3", "choices": ["x", "zzzzzzzzzz"], "answer": 1}"#, "\n",
            ),
        )
        .unwrap();
        let items = read_mc(&p).unwrap();
        assert_eq!(items[1].answer, 1);
        assert_eq!(items[2].id, "7");
        assert_eq!(items[0].context, "Question: Sky colour?\nAnswer:");
        let mut seen = 0;
        let out = evaluate(&mut Toy, &items, false, 2, &mut |d| seen = d).unwrap();
        assert_eq!(seen, 3);
        // Q1: " blue" -> 0 vs " green" -> -3: acc picks 0 (right).
        // Q2: " xx" -> -2, " blue sky!" -> -1: picks 1 (right).
        // Q3: " x" -> -1, " zzzzzzzzzz" -> -10: acc picks 0 (wrong);
        //     normalised: -1/1 = -1 vs -10/10 = -1: a tie, first wins (wrong).
        assert_eq!(
            out.iter().map(|o| o.pred).collect::<Vec<_>>(),
            vec![0, 1, 0]
        );
        let m = metrics(&items, &out);
        assert!((m["acc"].value - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m["acc:a"].value, 1.0);
        assert_eq!(m["acc:b"].n, 1);
        // acc_norm divides by the choice's characters: Q1 " green" -> -3/5 vs 0/4.
        assert_eq!(out[0].pred_norm, 0);
    }

    #[test]
    fn bad_rows_name_file_row_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mc.jsonl");
        std::fs::write(
            &p,
            "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 5}\n",
        )
        .unwrap();
        let e = read_mc(&p).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("`answer`"), "{e}");
        std::fs::write(
            &p,
            "{\"question\": \"q\", \"choices\": \"a\", \"answer\": 0}\n",
        )
        .unwrap();
        let e = read_mc(&p).unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("`choices`"), "{e}");
    }
}
