//! Writing the training data in the source's own layout (`--export FILE`), e.g.
//! the paper's `distilled_gsm8k.json` with the same `question`/`answer` keys as
//! `gsm8k_train.json`, so other tools can take it as is.

use std::path::Path;

use sdft_data::{atomic, write_examples, Format, ResolvedColumns};
use serde_json::{json, Map, Value};

use crate::row::DistilledRow;
use crate::Result;

/// One row as a JSON object with the source's column names (`mapping`), the output
/// column holding the chosen `response`.
pub fn row_in_source_layout(row: &DistilledRow, mapping: &ResolvedColumns) -> Value {
    let mut m = Map::new();
    let name = |col: &Option<String>, default: &str| col.clone().unwrap_or_else(|| default.into());
    if let Some(c) = &mapping.id {
        m.insert(c.clone(), json!(row.id));
    }
    if let Some(c) = &mapping.messages {
        let mut msgs = Vec::new();
        if let Some(s) = &row.system {
            msgs.push(json!({"role": "system", "content": s}));
        }
        for t in &row.history {
            msgs.push(json!({"role": "user", "content": t.user}));
            msgs.push(json!({"role": "assistant", "content": t.assistant}));
        }
        let user = match row.input.as_deref().filter(|i| !i.is_empty()) {
            Some(i) => format!("{}\n{}", row.instruction, i),
            None => row.instruction.clone(),
        };
        msgs.push(json!({"role": "user", "content": user}));
        msgs.push(json!({"role": "assistant", "content": row.response}));
        m.insert(c.clone(), Value::Array(msgs));
        return Value::Object(m);
    }
    if let Some(s) = &row.system {
        m.insert(name(&mapping.system, "system"), json!(s));
    }
    m.insert(
        name(&mapping.instruction, "instruction"),
        json!(row.instruction),
    );
    if let Some(i) = &row.input {
        m.insert(name(&mapping.input, "input"), json!(i));
    }
    m.insert(name(&mapping.output, "output"), json!(row.response));
    if mapping.history.is_some() || !row.history.is_empty() {
        let h: Vec<Value> = row
            .history
            .iter()
            .map(|t| json!([t.user, t.assistant]))
            .collect();
        m.insert(name(&mapping.history, "history"), Value::Array(h));
    }
    Value::Object(m)
}

/// Writes the rows' training data to `path`. JSON and JSONL keep the source's
/// column names; Parquet and CSV use sdft-data's example schema (`output` = response).
pub fn export(path: &Path, rows: &[DistilledRow], mapping: &ResolvedColumns) -> Result<()> {
    match Format::from_path(path)? {
        Format::Json => {
            let arr: Vec<Value> = rows
                .iter()
                .map(|r| row_in_source_layout(r, mapping))
                .collect();
            let text = serde_json::to_string_pretty(&arr).expect("JSON values serialize");
            atomic::write_bytes(path, text.as_bytes())?;
        }
        Format::Jsonl => {
            let mut text = String::new();
            for r in rows {
                text.push_str(&row_in_source_layout(r, mapping).to_string());
                text.push('\n');
            }
            atomic::write_bytes(path, text.as_bytes())?;
        }
        f => {
            let examples: Vec<_> = rows.iter().map(DistilledRow::to_example).collect();
            write_examples(path, &examples, Some(f))?;
        }
    }
    Ok(())
}
