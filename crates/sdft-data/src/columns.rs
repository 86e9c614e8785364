//! [`ColumnMap`]: which column of a file feeds which field of an
//! [`Example`](sdft_core::Example), detected from well-known names or set by the user.

use std::path::Path;

use crate::{Error, Result};

/// The fields of an example a column can map onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Id,
    System,
    Instruction,
    Input,
    Output,
    /// Earlier turns: `[[user, assistant], ...]` or `[{"user":..,"assistant":..}, ...]`.
    History,
    /// A whole chat (`[{"role","content"}]` or ShareGPT `[{"from","value"}]`).
    Messages,
}

/// Field names accepted in `--map COLUMN=FIELD`.
pub const FIELD_NAMES: &str = "id, system, instruction, input, output, history, messages";

impl Field {
    pub const ALL: [Field; 7] = [
        Field::Id,
        Field::System,
        Field::Instruction,
        Field::Input,
        Field::Output,
        Field::History,
        Field::Messages,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::System => "system",
            Field::Instruction => "instruction",
            Field::Input => "input",
            Field::Output => "output",
            Field::History => "history",
            Field::Messages => "messages",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Column names recognised for this field when no mapping is given, in priority
    /// order. These cover the paper's files (GSM8K `question/answer`, AdvBench
    /// `goal/target`), Alpaca, Dolly (`context`, `response`), ShareGPT and chat data.
    pub fn known_columns(self) -> &'static [&'static str] {
        match self {
            Field::Id => &["id"],
            Field::System => &["system", "system_prompt"],
            Field::Instruction => &["instruction", "question", "goal", "prompt", "query"],
            Field::Input => &["input", "context"],
            Field::Output => &["output", "answer", "target", "response", "completion"],
            Field::History => &["history"],
            Field::Messages => &["messages", "conversations"],
        }
    }
}

/// Maps file columns onto example fields. Unset fields are detected from
/// [`Field::known_columns`]; explicit entries win.
///
/// ```
/// use sdft_data::{ColumnMap, Field};
/// let map = ColumnMap::new().with("prompt_text", Field::Instruction).with("gold", Field::Output);
/// assert_eq!(map.explicit(Field::Output), Some("gold"));
/// let parsed = ColumnMap::parse_specs(&["prompt_text=instruction", "gold=output"]).unwrap();
/// assert_eq!(parsed, map);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    entries: Vec<(String, Field)>,
}

/// The columns a file's rows are read from, after detection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedColumns {
    pub id: Option<String>,
    pub system: Option<String>,
    pub instruction: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub history: Option<String>,
    pub messages: Option<String>,
}

impl ColumnMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `column` onto `field` (replacing an earlier entry for that field).
    pub fn with(mut self, column: impl Into<String>, field: Field) -> Self {
        self.entries.retain(|(_, f)| *f != field);
        self.entries.push((column.into(), field));
        self
    }

    /// Parses `COLUMN=FIELD` specs (the CLI's `--map`).
    pub fn parse_specs<S: AsRef<str>>(specs: &[S]) -> Result<Self> {
        let mut map = ColumnMap::new();
        for spec in specs {
            let spec = spec.as_ref();
            let bad = || Error::BadMapping {
                spec: spec.to_string(),
                expected: FIELD_NAMES,
            };
            let (col, field) = spec.rsplit_once('=').ok_or_else(bad)?;
            let field = Field::parse(field.trim()).ok_or_else(bad)?;
            if col.is_empty() {
                return Err(bad());
            }
            map = map.with(col, field);
        }
        Ok(map)
    }

    /// The column explicitly mapped onto `field`, if any.
    pub fn explicit(&self, field: Field) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, f)| *f == field)
            .map(|(c, _)| c.as_str())
    }

    /// Resolves the mapping against a file's columns. Fails when a mapped column is
    /// absent, or when neither an instruction column nor a messages column exists.
    pub fn resolve(&self, path: &Path, columns: &[String]) -> Result<ResolvedColumns> {
        let found = || columns.join(", ");
        let pick = |field: Field| -> Result<Option<String>> {
            if let Some(col) = self.explicit(field) {
                if !columns.iter().any(|c| c == col) {
                    return Err(Error::MappedColumnAbsent {
                        path: path.to_path_buf(),
                        column: col.to_string(),
                        field: field.as_str().to_string(),
                        found: found(),
                    });
                }
                return Ok(Some(col.to_string()));
            }
            // A column explicitly mapped elsewhere is not also auto-detected.
            let taken = |c: &str| self.entries.iter().any(|(col, _)| col == c);
            Ok(field
                .known_columns()
                .iter()
                .find(|k| columns.iter().any(|c| c == *k) && !taken(k))
                .map(|k| k.to_string()))
        };
        let resolved = ResolvedColumns {
            id: pick(Field::Id)?,
            system: pick(Field::System)?,
            instruction: pick(Field::Instruction)?,
            input: pick(Field::Input)?,
            output: pick(Field::Output)?,
            history: pick(Field::History)?,
            messages: pick(Field::Messages)?,
        };
        if resolved.instruction.is_none() && resolved.messages.is_none() {
            return Err(Error::MissingColumn {
                path: path.to_path_buf(),
                field: "instruction",
                expected: format!(
                    "{} (or a chat column: {})",
                    Field::Instruction.known_columns().join(", "),
                    Field::Messages.known_columns().join(", ")
                ),
                found: found(),
            });
        }
        if resolved.messages.is_none() && resolved.output.is_none() {
            return Err(Error::MissingColumn {
                path: path.to_path_buf(),
                field: "output",
                expected: Field::Output.known_columns().join(", "),
                found: found(),
            });
        }
        Ok(resolved)
    }
}
