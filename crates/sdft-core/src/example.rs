//! [`Example`]: one row of a task dataset.

use serde::{Deserialize, Serialize};

/// One earlier exchange of a multi-turn conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// What the user said.
    pub user: String,
    /// What the assistant answered (the reference response of that turn).
    pub assistant: String,
}

impl Turn {
    pub fn new(user: impl Into<String>, assistant: impl Into<String>) -> Self {
        Turn {
            user: user.into(),
            assistant: assistant.into(),
        }
    }
}

/// One example of a dataset: the context `system`, the instruction (plus optional
/// `input`), the reference `output`, and the earlier turns of a conversation in
/// `history` (oldest first; the final turn is `instruction` → `output`).
///
/// `id` is stable: later stages join rows by id, never by position. Readers in
/// `sdft-data` fill it from the dataset's own id column or from a content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub instruction: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    pub output: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Turn>,
}

impl Example {
    /// A single-turn example with an empty id (readers assign ids; see `sdft-data`).
    pub fn new(instruction: impl Into<String>, output: impl Into<String>) -> Self {
        Example {
            id: String::new(),
            system: None,
            instruction: instruction.into(),
            input: None,
            output: output.into(),
            history: Vec::new(),
        }
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    pub fn with_input(mut self, input: impl Into<String>) -> Self {
        self.input = Some(input.into());
        self
    }

    pub fn with_history(mut self, history: Vec<Turn>) -> Self {
        self.history = history;
        self
    }

    /// The user text of the final turn as the paper's templates fill `{query}`:
    /// the instruction, or `instruction + "\n" + input` when the input is non-empty.
    pub fn query(&self) -> String {
        match self.input.as_deref() {
            Some(input) if !input.is_empty() => format!("{}\n{}", self.instruction, input),
            _ => self.instruction.clone(),
        }
    }

    /// All turns in order, the final one (`query()` → `output`) last.
    pub fn turns(&self) -> Vec<Turn> {
        let mut turns = self.history.clone();
        turns.push(Turn::new(self.query(), self.output.clone()));
        turns
    }

    /// True when the example has earlier turns.
    pub fn is_multi_turn(&self) -> bool {
        !self.history.is_empty()
    }
}
