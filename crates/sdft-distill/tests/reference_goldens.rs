//! The distillation checks and the keep-or-fallback choice against goldens
//! produced by the paper's own `eval/gen_distilled_data.py` (`verify`,
//! `get_check_func`, `get_output_data_list`), run unchanged by
//! `scripts/reference/make_goldens.py` (see `docs/eval.md`, "Goldens from the
//! reference code"). The goldens file is shared with `sdft-eval`'s test of the same
//! name.
//!
//! The expected values are the `main` branch's (strict OpenFunctions check). Where
//! the reference raises (a reference answer that does not parse as a call stops
//! the whole script), we expect a fallback to the original response. Rows where
//! the `reproduce` branch decides otherwise (its `check_openfunction` returns 0.5
//! for a positional match, which is truthy) are printed, not failed.
//!
//! Every case is compared and every difference is listed, then the test fails once.

use sdft_core::{Completion, Example, FinishReason};
use sdft_distill::{BanPhrases, Check, DistillConfig, Distiller, Task};
use serde_json::Value;

const GOLDENS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../sdft-eval/tests/goldens/reference_rules.json"
);

/// Python's `str.strip()` (what `strip_dict` does before `verify` and the checks).
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

/// The original row as our [`Example`]: GSM8K rows are `question`/`answer`, the
/// others `instruction`/`input`/`output`.
fn example(origin: &Value) -> Example {
    let field = |a: &str, b: &str| {
        origin
            .get(a)
            .or_else(|| origin.get(b))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {a} or {b} in {origin}"))
            .to_string()
    };
    let mut ex = Example::new(field("question", "instruction"), field("answer", "output"));
    if let Some(input) = origin.get("input").and_then(Value::as_str) {
        ex = ex.with_input(input);
    }
    ex.with_id("golden")
}

#[test]
fn distillation_matches_the_reference_code() {
    let text = std::fs::read_to_string(GOLDENS).unwrap_or_else(|e| panic!("{GOLDENS}: {e}"));
    let g: Value = serde_json::from_str(&text).unwrap();
    let cases = g["distill"]
        .as_array()
        .expect("goldens have a distill list");
    let mut misses: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for c in cases {
        let id = s(c, "id");
        let dataset = s(c, "dataset");
        let predict = s(c, "predict");
        let answer_field = s(c, "answer_field");
        let gold = &c["main"];
        let task = Task::parse(dataset).unwrap_or_else(|e| panic!("{id}: {e}"));
        let ex = example(&c["origin"]);
        let distiller = Distiller::new(DistillConfig::builder(task).build().unwrap());

        // `verify` (the ban phrases), on the rewrite stripped as the reference does.
        let want_verify = gold["verify"]["value"].as_bool().unwrap();
        let got_verify = BanPhrases.check(&ex, py_strip(predict)).is_ok();
        if want_verify != got_verify {
            misses.push(format!(
                "{id}: ban-phrase check of {predict:?}: reference verify = {want_verify}, ours = {got_verify}"
            ));
        }

        // The task's own check (check_math / check_openfunction / check_magicoder;
        // nothing for alpaca): ours must pass exactly where the reference's is truthy;
        // where it raises, ours must reject.
        let (want_check, how) = match gold["check"].get("value") {
            Some(Value::Bool(b)) => (*b, "returns".to_string()),
            Some(Value::Number(n)) => (n.as_f64().unwrap() != 0.0, format!("returns {n}, so")),
            Some(other) => panic!("{id}: unexpected check value {other}"),
            None => (false, format!("raises ({}), so", gold["check"]["error"])),
        };
        let task_checks: Vec<_> = task
            .checks()
            .into_iter()
            .filter(|c| c.name() != "ban_phrase")
            .collect();
        let got_check = task_checks
            .iter()
            .all(|c| c.check(&ex, py_strip(predict)).is_ok());
        if want_check != got_check {
            misses.push(format!(
                "{id}: {dataset} check of rewrite {predict:?} against {:?}: reference check {how} {want_check}, ours = {got_check}",
                ex.output
            ));
        }

        // The row the distillation writes: the stripped rewrite when kept, else the
        // stripped original.
        let completion = Completion {
            text: predict.to_string(),
            tokens: 0,
            finish_reason: FinishReason::Eos,
        };
        let row = distiller.decide(&ex, Some(&completion), None, None);
        let (want_kept, want_response, how) = match gold["row"].get("value") {
            Some(written) => (
                gold["kept"].as_bool().unwrap(),
                s(written, answer_field).to_string(),
                "get_output_data_list writes".to_string(),
            ),
            None => (
                false,
                py_strip(&ex.output).to_string(),
                format!(
                    "get_output_data_list raises ({}); we expect the fallback",
                    gold["row"]["error"]
                ),
            ),
        };
        if row.kept != want_kept || row.response != want_response {
            misses.push(format!(
                "{id}: rewrite {predict:?} of {:?}: reference {how} kept={want_kept} response={want_response:?}; ours kept={} response={:?} (reason {:?})",
                ex.output, row.kept, row.response, row.reason
            ));
        }
        // Every string field is stripped, rewritten or not.
        if let Some(written) = gold["row"].get("value") {
            let instr_key = if written.get("question").is_some() {
                "question"
            } else {
                "instruction"
            };
            if row.instruction != s(written, instr_key) {
                misses.push(format!(
                    "{id}: instruction: reference writes {:?}, ours {:?}",
                    s(written, instr_key),
                    row.instruction
                ));
            }
            if let Some(input) = written.get("input").and_then(Value::as_str) {
                if row.input.as_deref().unwrap_or("") != input {
                    misses.push(format!(
                        "{id}: input: reference writes {input:?}, ours {:?}",
                        row.input
                    ));
                }
            }
        }

        let rep = &c["reproduce"];
        if rep.get("kept") != gold.get("kept") || rep["row"] != gold["row"] {
            notes.push(format!(
                "{id}: the reproduce branch decides differently: kept={} row={} (main: kept={} row={})",
                rep["kept"], rep["row"], gold["kept"], gold["row"]
            ));
        }
    }
    println!("{} distill cases", cases.len());
    for n in &notes {
        println!("note: {n}");
    }
    if !misses.is_empty() {
        panic!(
            "{} mismatches with the reference goldens ({GOLDENS}):\n- {}",
            misses.len(),
            misses.join("\n- ")
        );
    }
}
