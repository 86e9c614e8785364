//! Stable example ids.
//!
//! Every example gets an id that later stages join on (never row positions):
//!
//! - the dataset's own id column when it has one (strings, or integers written in
//!   decimal). Ids must be unique: a repeated id is a schema error of that row;
//! - otherwise a **content hash**: the first 16 hex digits of the SHA-256 of the
//!   example's content, written as a JSON array
//!   `[system, instruction, input, output, [[user, assistant], ...]]` with absent
//!   `system`/`input` written as `""` (so the id is the same whether a file stores an
//!   empty input or none, in any format). Rows with identical content get the
//!   suffixes `-2`, `-3`, ... in file order.

use std::collections::HashMap;

use sdft_core::Example;
use sha2::{Digest, Sha256};

use crate::RowIssue;

/// The content hash of an example (see the module docs).
///
/// ```
/// use sdft_core::Example;
/// let a = sdft_data::content_id(&Example::new("Add 2 and 3.", "5"));
/// let b = sdft_data::content_id(&Example::new("Add 2 and 3.", "5").with_input(""));
/// assert_eq!(a, b);
/// assert_eq!(a.len(), 16);
/// ```
pub fn content_id(ex: &Example) -> String {
    let history: Vec<[&str; 2]> = ex
        .history
        .iter()
        .map(|t| [t.user.as_str(), t.assistant.as_str()])
        .collect();
    let canonical = serde_json::json!([
        ex.system.as_deref().unwrap_or(""),
        ex.instruction,
        ex.input.as_deref().unwrap_or(""),
        ex.output,
        history,
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Fills empty ids with content hashes and checks that ids are unique. Returns the
/// issues of rows whose id repeats an earlier row's (those rows are to be dropped).
pub(crate) fn assign_ids(
    examples: &mut [Example],
    rows: &[usize],
    id_column: Option<&str>,
) -> Vec<RowIssue> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut issues = Vec::new();
    for (ex, &row) in examples.iter_mut().zip(rows) {
        if ex.id.is_empty() {
            let base = content_id(ex);
            let mut id = base.clone();
            let mut n = 1;
            while seen.contains_key(&id) {
                n += 1;
                id = format!("{base}-{n}");
            }
            ex.id = id;
        } else if let Some(first) = seen.get(&ex.id) {
            issues.push(RowIssue {
                row,
                column: id_column.map(str::to_string),
                message: format!(
                    "expected a unique id, found `{}` again (first at row {first})",
                    ex.id
                ),
            });
            continue;
        }
        seen.insert(ex.id.clone(), row);
    }
    issues
}
