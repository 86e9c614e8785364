//! [`Prompt`]: prompt text as pieces with BOS/EOS markers.

use serde::{Deserialize, Serialize};

/// One piece of a prompt: text, or a special-token marker that a model maps to its
/// own BOS/EOS ids. Text pieces are encoded separately (no special tokens added), as
/// the paper's reference code does, so piece boundaries are part of the prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptPiece {
    /// The model's beginning-of-sequence token.
    Bos,
    /// The model's end-of-sequence token.
    Eos,
    /// Text, tokenized on its own.
    Text(String),
}

/// A prompt: an ordered list of [`PromptPiece`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub pieces: Vec<PromptPiece>,
}

impl Prompt {
    /// A prompt of one raw text piece (no BOS): "use this text as is".
    pub fn raw(text: impl Into<String>) -> Self {
        Prompt {
            pieces: vec![PromptPiece::Text(text.into())],
        }
    }

    pub fn new(pieces: Vec<PromptPiece>) -> Self {
        Prompt { pieces }
    }

    /// Appends a piece, skipping empty text (an empty piece encodes to nothing).
    pub fn push(&mut self, piece: PromptPiece) {
        if let PromptPiece::Text(t) = &piece {
            if t.is_empty() {
                return;
            }
        }
        self.pieces.push(piece);
    }

    pub fn extend(&mut self, other: Prompt) {
        for p in other.pieces {
            self.push(p);
        }
    }

    /// The text pieces concatenated, markers left out.
    pub fn text(&self) -> String {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                PromptPiece::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The prompt as one string with the markers written as `bos` and `eos`
    /// (for display, e.g. `"<s>"` and `"</s>"`).
    pub fn display_with(&self, bos: &str, eos: &str) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                PromptPiece::Bos => out.push_str(bos),
                PromptPiece::Eos => out.push_str(eos),
                PromptPiece::Text(t) => out.push_str(t),
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

impl std::fmt::Display for Prompt {
    /// Shows BOS/EOS the way the paper writes them: `<s>` and `</s>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display_with("<s>", "</s>"))
    }
}
