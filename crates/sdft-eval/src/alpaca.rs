//! AlpacaEval: outputs in the `alpaca_eval` tool's JSON format, and a local
//! pairwise judge over any [`Generator`] that gives a win rate against reference
//! outputs.
//!
//! The judge sees each pair twice, once in each order, to cancel position bias.
//! Each order scores 1 when the evaluated model's answer is preferred, 0 when the
//! reference's is, and 0.5 for a tie or a verdict that cannot be read; a row's score
//! is the mean of its two orders, and the win rate the mean over rows.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use sdft_core::{Example, GenerationRequest, Generator, SamplingParams};
use sdft_data::Template;
use serde::{Deserialize, Serialize};

use crate::{Error, Metric, Result};

/// One entry of an `alpaca_eval` outputs file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlpacaOutput {
    pub instruction: String,
    pub output: String,
    #[serde(default)]
    pub generator: String,
}

/// Writes `[{instruction, output, generator}]` (the input of
/// `alpaca_eval --model_outputs FILE`), atomically.
pub fn export_outputs(path: &Path, outputs: &[AlpacaOutput]) -> Result<()> {
    let text = serde_json::to_string_pretty(outputs).expect("outputs serialize");
    sdft_data::atomic::write_bytes(path, format!("{text}\n").as_bytes())?;
    Ok(())
}

/// Reads an `alpaca_eval` outputs file (a JSON array of objects with `instruction`
/// and `output`) into instruction -> output.
pub fn read_outputs(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(|e| {
        Error::file(
            path,
            format!("expected a JSON array of {{instruction, output}} objects: {e}"),
        )
    })?;
    let mut out = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let get = |k: &str| r.get(k).and_then(|v| v.as_str());
        match (get("instruction"), get("output")) {
            (Some(ins), Some(o)) => {
                out.insert(ins.to_string(), o.to_string());
            }
            _ => {
                return Err(Error::row(
                    path,
                    i + 1,
                    "an object with `instruction` and `output` strings",
                    r.to_string().chars().take(80).collect::<String>(),
                ))
            }
        }
    }
    Ok(out)
}

/// The judge's instruction (rendered with the `alpaca` template).
pub const JUDGE_INSTRUCTION: &str = "You are a fair judge. Which answer follows the instruction better: more helpful, correct and relevant? Reply with exactly one letter, A or B, or the word tie.\n\n# Instruction\n{instruction}\n\n# Answer A\n{a}\n\n# Answer B\n{b}";

/// A judge's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    A,
    B,
    Tie,
}

/// Reads a verdict from the start of the judge's reply: `A`, `B`, `(a)`,
/// `Answer B`, `tie` (any case). Anything else is `None`.
pub fn parse_verdict(reply: &str) -> Option<Verdict> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(?i)^\W*(?:answer\s*)?\(?\s*(a|b|tie)\b").expect("valid regex")
    });
    let c = re.captures(reply.trim())?;
    match c[1].to_ascii_lowercase().as_str() {
        "a" => Some(Verdict::A),
        "b" => Some(Verdict::B),
        _ => Some(Verdict::Tie),
    }
}

fn judge_text(instruction: &str, a: &str, b: &str) -> String {
    // One pass so that answer text holding `{b}` is never substituted again.
    let mut out = String::new();
    let mut rest = JUDGE_INSTRUCTION;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (value, len) = if tail.starts_with("{instruction}") {
            (instruction, 13)
        } else if tail.starts_with("{a}") {
            (a, 3)
        } else if tail.starts_with("{b}") {
            (b, 3)
        } else {
            ("{", 1)
        };
        out.push_str(value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// A pair to judge: the evaluated model's output against the reference's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub id: String,
    pub instruction: String,
    pub output: String,
    pub reference: String,
}

/// The judge's result: per-row scores (the mean of both orders) and how many of the
/// `2 * rows` verdicts could not be read (counted as ties).
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeResult {
    pub scores: Vec<f64>,
    pub unparsed: usize,
    pub win_rate: Metric,
}

/// Judges every pair in both orders with `judge` (chunks of `chunk` requests).
pub fn judge(
    judge: &mut dyn Generator,
    pairs: &[Pair],
    params: &SamplingParams,
    chunk: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<JudgeResult> {
    let template = Template::preset("alpaca").expect("alpaca preset");
    let mut reqs = Vec::with_capacity(2 * pairs.len());
    for p in pairs {
        for (order, (a, b)) in [(&p.output, &p.reference), (&p.reference, &p.output)]
            .into_iter()
            .enumerate()
        {
            let ex = Example::new(judge_text(&p.instruction, a, b), "");
            reqs.push(GenerationRequest::new(
                format!("judge:{}:{order}", p.id),
                template.render_prompt(&ex)?,
            ));
        }
    }
    let mut replies = Vec::with_capacity(reqs.len());
    for c in reqs.chunks(chunk.max(2)) {
        let base = replies.len();
        let mut finished = 0;
        let out = judge
            .generate_each(c, params, &mut |_, _| {
                finished += 1;
                progress((base + finished) / 2);
            })
            .map_err(|e| Error::Model {
                benchmark: "alpacaeval judge".into(),
                source: e,
            })?;
        if out.len() != c.len() {
            return Err(Error::CountMismatch {
                benchmark: "alpacaeval judge".into(),
                expected: c.len(),
                got: out.len(),
            });
        }
        replies.extend(out.into_iter().map(|c| c.text));
    }
    let mut unparsed = 0;
    let mut scores = Vec::with_capacity(pairs.len());
    for pair in replies.chunks(2) {
        let mut s = 0.0;
        for (order, reply) in pair.iter().enumerate() {
            let v = parse_verdict(reply);
            if v.is_none() {
                unparsed += 1;
            }
            // Order 0 shows the model's answer as A, order 1 as B.
            s += match (v, order) {
                (Some(Verdict::A), 0) | (Some(Verdict::B), 1) => 1.0,
                (Some(Verdict::B), 0) | (Some(Verdict::A), 1) => 0.0,
                _ => 0.5,
            };
        }
        scores.push(s / 2.0);
    }
    let win_rate = Metric::from_scores(&scores);
    Ok(JudgeResult {
        scores,
        unparsed,
        win_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdft_core::{Completion, FinishReason};

    /// Prefers the answer that mentions "good"; says "tie" when both or neither do.
    struct Fake {
        always_a: bool,
    }
    impl Generator for Fake {
        fn generate_each(
            &mut self,
            r: &[GenerationRequest],
            _: &SamplingParams,
            done: &mut dyn FnMut(usize, &Completion),
        ) -> sdft_core::Result<Vec<Completion>> {
            let out: Vec<Completion> = r
                .iter()
                .map(|q| {
                    let t = q.prompt.text();
                    let a = t
                        .split("# Answer A")
                        .nth(1)
                        .unwrap()
                        .split("# Answer B")
                        .next()
                        .unwrap();
                    let b = t.split("# Answer B").nth(1).unwrap();
                    let text = if self.always_a {
                        "A".to_string()
                    } else {
                        match (a.contains("good"), b.contains("good")) {
                            (true, false) => "A.".into(),
                            (false, true) => "Answer B".into(),
                            (true, true) => "Tie".into(),
                            _ => "I cannot decide".into(),
                        }
                    };
                    Completion {
                        text,
                        tokens: 1,
                        finish_reason: FinishReason::Eos,
                    }
                })
                .collect();
            out.iter().enumerate().for_each(|(i, c)| done(i, c));
            Ok(out)
        }
    }

    fn pair(id: &str, out: &str, reference: &str) -> Pair {
        Pair {
            id: id.into(),
            instruction: "Say something {b}".into(),
            output: out.into(),
            reference: reference.into(),
        }
    }

    #[test]
    fn both_orders_and_half_credit_ties() {
        let pairs = vec![
            pair("1", "good", "bad"),
            pair("2", "bad", "good"),
            pair("3", "good", "good"),
            pair("4", "meh", "meh"),
        ];
        let p = SamplingParams::greedy();
        let r = judge(&mut Fake { always_a: false }, &pairs, &p, 3, &mut |_| {}).unwrap();
        assert_eq!(r.scores, vec![1.0, 0.0, 0.5, 0.5]);
        assert_eq!(r.unparsed, 2);
        assert_eq!(r.win_rate.value, 0.5);
        // A judge that always says "A" is cancelled out by the order swap.
        let r = judge(&mut Fake { always_a: true }, &pairs, &p, 8, &mut |_| {}).unwrap();
        assert_eq!(r.scores, vec![0.5; 4]);
    }

    #[test]
    fn verdicts_and_files() {
        assert_eq!(parse_verdict(" (b) because"), Some(Verdict::B));
        assert_eq!(parse_verdict("TIE"), Some(Verdict::Tie));
        assert_eq!(parse_verdict("Answer A is better"), Some(Verdict::A));
        assert_eq!(parse_verdict("Both are fine"), None);
        assert_eq!(parse_verdict("About"), None);
        assert!(judge_text("do {b}", "x", "y").starts_with("You are"));
        assert!(judge_text("do {b}", "x", "y").contains("do {b}"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.json");
        export_outputs(
            &p,
            &[AlpacaOutput {
                instruction: "i".into(),
                output: "o".into(),
                generator: "g".into(),
            }],
        )
        .unwrap();
        assert_eq!(read_outputs(&p).unwrap()["i"], "o");
        std::fs::write(&p, r#"[{"instruction": "i"}]"#).unwrap();
        let e = read_outputs(&p).unwrap_err().to_string();
        assert!(e.contains("row 1"), "{e}");
    }
}
