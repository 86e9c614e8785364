//! Our scoring rules and prompt templates against goldens produced by the paper's
//! own reference code (sail-sg/sdft, `main` and `reproduce` branches), run
//! unchanged by `scripts/reference/make_goldens.py` (see `docs/eval.md`, "Goldens
//! from the reference code"). The distillation part is in
//! `crates/sdft-distill/tests/reference_goldens.rs`, on the same file.
//!
//! Every case is compared and every difference is listed, then the test fails once.

use std::collections::BTreeMap;

use sdft_core::{answer, Example, PromptPiece, Turn};
use sdft_data::Template;
use sdft_eval::scoring;
use serde_json::Value;

const GOLDENS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/goldens/reference_rules.json"
);

fn goldens() -> Value {
    let text = std::fs::read_to_string(GOLDENS).unwrap_or_else(|e| panic!("{GOLDENS}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{GOLDENS}: {e}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

fn cases<'a>(g: &'a Value, rule: &str) -> &'a Vec<Value> {
    g[rule]
        .as_array()
        .unwrap_or_else(|| panic!("goldens have no {rule} list"))
}

/// Mismatches per rule, reported together at the end.
#[derive(Default)]
struct Report {
    by_rule: BTreeMap<&'static str, Vec<String>>,
    checked: BTreeMap<&'static str, usize>,
}

impl Report {
    fn count(&mut self, rule: &'static str) {
        *self.checked.entry(rule).or_default() += 1;
    }

    fn miss(&mut self, rule: &'static str, msg: String) {
        self.by_rule.entry(rule).or_default().push(msg);
    }

    fn finish(self) {
        let total: usize = self.by_rule.values().map(Vec::len).sum();
        let mut out = String::new();
        for (rule, n) in &self.checked {
            let bad = self.by_rule.get(rule).map_or(0, Vec::len);
            out.push_str(&format!("{rule}: {n} cases, {bad} mismatches\n"));
        }
        for (rule, list) in &self.by_rule {
            out.push_str(&format!("\n== {rule} ({} mismatches)\n", list.len()));
            for m in list {
                out.push_str(&format!("- {m}\n"));
            }
        }
        if total == 0 {
            println!("{out}");
        } else {
            panic!("{total} mismatches with the reference goldens ({GOLDENS}):\n{out}");
        }
    }
}

/// `{"value": "123"}` (Python's `int()` of `find_last_integer`) as our
/// `last_integer` should give it: `Some(123)`; `{"error": ...}` (the reference's
/// `int()` raised) as `None`.
fn expected_int(golden: &Value) -> Option<String> {
    golden.get("value").map(|v| v.as_str().unwrap().to_string())
}

fn check_math(g: &Value, r: &mut Report) {
    for c in cases(g, "math") {
        r.count("math");
        let id = s(c, "id");
        let (pred, label) = (s(c, "predict"), s(c, "label"));
        let gold = &c["main"];
        for (side, text) in [("predict", pred), ("label", label)] {
            let want = expected_int(&gold[format!("{side}_int")]);
            let got = answer::last_integer_text(text);
            if want != got {
                r.miss(
                    "math",
                    format!(
                        "{id}: last_integer({text:?}) ({side}): reference int(find_last_integer) = {}, ours = {}",
                        want.unwrap_or_else(|| format!("raises ({})", gold[format!("{side}_int")]["error"])),
                        got.unwrap_or_else(|| "None (unparsable)".into())
                    ),
                );
            }
        }
        let want = gold["check_math"]["value"]
            .as_bool()
            .expect("check_math never raises");
        let got = answer::math_answers_match(pred, label);
        if want != got {
            r.miss(
                "math",
                format!("{id}: math_answers_match(predict={pred:?}, label={label:?}): reference check_math = {want}, ours = {got}"),
            );
        }
        // Both branches run the same files; the goldens must agree.
        assert_eq!(c["main"], c["reproduce"], "{id}: branches differ on math");
    }
}

fn check_openfunction(g: &Value, r: &mut Report) {
    for c in cases(g, "openfunction") {
        let id = s(c, "id");
        let (pred, label) = (s(c, "predict"), s(c, "label"));

        r.count("openfunction_strict (main)");
        let main = &c["main"];
        let (want, how) = match main.get("value") {
            Some(v) => (v.as_bool().unwrap(), "check_openfunction".to_string()),
            // The reference raises ValueError on a reference that does not parse;
            // our scorer counts it wrong.
            None => (
                false,
                format!("raises ({}), so ours must be false", main["error"]),
            ),
        };
        let got = scoring::openfunction_correct(pred, label);
        if want != got {
            r.miss(
                "openfunction_strict (main)",
                format!("{id}: openfunction_correct(predict={pred:?}, reference={label:?}): reference {how} = {want}, ours = {got}"),
            );
        }

        r.count("openfunction_partial (reproduce)");
        let rep = &c["reproduce"];
        let (want, how) = match rep.get("value") {
            Some(v) => (v.as_f64().unwrap(), "check_openfunction".to_string()),
            None => (0.0, format!("raises ({}), so ours must be 0", rep["error"])),
        };
        let got = scoring::openfunction_partial_score(pred, label);
        if want != got {
            r.miss(
                "openfunction_partial (reproduce)",
                format!("{id}: openfunction_partial_score(predict={pred:?}, reference={label:?}): reference {how} = {want}, ours = {got}"),
            );
        }
    }
}

fn check_safety(g: &Value, r: &mut Report) {
    for c in cases(g, "safety") {
        r.count("safety");
        let id = s(c, "id");
        let resp = s(c, "response");
        let want = c["main"]["value"].as_bool().unwrap();
        let got = scoring::is_safe_response(resp);
        if want != got {
            r.miss(
                "safety",
                format!(
                    "{id}: is_safe_response({resp:?}): reference is_safe = {want}, ours = {got}"
                ),
            );
        }
        assert_eq!(c["main"], c["reproduce"], "{id}: branches differ on safety");
    }
}

/// A template row of the goldens as our [`Example`].
fn example(row: &Value) -> Example {
    let mut ex = Example::new(s(row, "instruction"), s(row, "output"));
    if let Some(input) = row.get("input").and_then(Value::as_str) {
        ex = ex.with_input(input);
    }
    if let Some(system) = row.get("system").and_then(Value::as_str) {
        ex = ex.with_system(system);
    }
    if let Some(history) = row.get("history").and_then(Value::as_array) {
        ex = ex.with_history(
            history
                .iter()
                .map(|t| Turn::new(t[0].as_str().unwrap(), t[1].as_str().unwrap()))
                .collect(),
        );
    }
    ex
}

/// Our pieces in the goldens' form; empty text pieces are dropped, as the
/// reference skips empty strings (they encode to no tokens).
fn pieces(p: &sdft_core::Prompt) -> Value {
    Value::Array(
        p.pieces
            .iter()
            .filter_map(|piece| match piece {
                PromptPiece::Bos => Some(serde_json::json!({"type": "bos"})),
                PromptPiece::Eos => Some(serde_json::json!({"type": "eos"})),
                PromptPiece::Text(t) if t.is_empty() => None,
                PromptPiece::Text(t) => Some(serde_json::json!({"type": "text", "text": t})),
            })
            .collect(),
    )
}

fn check_templates(g: &Value, r: &mut Report) {
    for c in cases(g, "templates") {
        r.count("templates");
        let id = s(c, "id");
        let preset = s(c, "preset");
        let row = &c["row"];
        let gold = &c["reproduce"];
        if let Some(why) = row["known_difference"].as_str() {
            // A documented, deliberate difference (a bug of the reference).
            eprintln!("note: template case {id} ({preset}) not compared: {why}");
            continue;
        }
        let t = match Template::load(preset) {
            Ok(t) => t,
            Err(e) => {
                r.miss(
                    "templates",
                    format!("{id}: Template::load({preset:?}) failed: {e}"),
                );
                continue;
            }
        };
        let ex = example(row);
        let row_s = serde_json::to_string(row).unwrap();
        match t.render_prompt(&ex) {
            Ok(p) => {
                let text = t.display(&p);
                if text != s(&gold["prompt"], "text") {
                    r.miss(
                        "templates",
                        format!(
                            "{id}: render_prompt text for row {row_s}:\n    reference {:?}\n    ours      {text:?}",
                            s(&gold["prompt"], "text")
                        ),
                    );
                } else if pieces(&p) != gold["prompt"]["pieces"] {
                    r.miss(
                        "templates",
                        format!(
                            "{id}: render_prompt pieces for row {row_s}:\n    reference {}\n    ours      {}",
                            gold["prompt"]["pieces"],
                            pieces(&p)
                        ),
                    );
                }
            }
            Err(e) => r.miss("templates", format!("{id}: render_prompt failed: {e}")),
        }
        let turns = match t.render_turns(&ex) {
            Ok(turns) => turns,
            Err(e) => {
                r.miss("templates", format!("{id}: render_turns failed: {e}"));
                continue;
            }
        };
        let gold_turns = gold["turns"].as_array().unwrap();
        if turns.len() != gold_turns.len() {
            r.miss(
                "templates",
                format!(
                    "{id}: render_turns gave {} turns, the reference's encode_multiturn {}",
                    turns.len(),
                    gold_turns.len()
                ),
            );
            continue;
        }
        for (i, (ours, want)) in turns.iter().zip(gold_turns).enumerate() {
            for (part, prompt) in [("prompt", &ours.prompt), ("response", &ours.response)] {
                let text = t.display(prompt);
                let want_text = s(&want[part], "text");
                if text != want_text {
                    r.miss(
                        "templates",
                        format!(
                            "{id}: render_turns[{i}].{part} for row {row_s}:\n    reference {want_text:?}\n    ours      {text:?}"
                        ),
                    );
                } else if pieces(prompt) != want[part]["pieces"] {
                    r.miss(
                        "templates",
                        format!(
                            "{id}: render_turns[{i}].{part} pieces:\n    reference {}\n    ours      {}",
                            want[part]["pieces"],
                            pieces(prompt)
                        ),
                    );
                }
            }
        }
    }
}

#[test]
fn goldens_record_their_sources() {
    let g = goldens();
    let sources = g["sources"].as_array().unwrap();
    assert!(!sources.is_empty());
    for src in sources {
        assert_eq!(src["repository"], "sail-sg/sdft");
        assert_eq!(s(src, "commit").len(), 40, "{src}");
        assert_eq!(s(src, "sha256").len(), 64, "{src}");
    }
    assert!(s(&g["generated_by"], "command").contains("make_goldens.py"));
}

#[test]
fn scoring_and_templates_match_the_reference_code() {
    let g = goldens();
    let mut r = Report::default();
    check_math(&g, &mut r);
    check_openfunction(&g, &mut r);
    check_safety(&g, &mut r);
    check_templates(&g, &mut r);
    r.finish();
}
