//! Stop strings matched on decoded text, across token boundaries, at a cost of a
//! few tokens' decoding per step.
//!
//! A row's text grows by incremental detokenization, as serving engines do (TGI,
//! vLLM): each step decodes only the tokens since the last complete piece of text,
//! with one token of context before them, and appends the difference; a piece that
//! ends in an incomplete UTF-8 sequence waits for the next token. Stop strings are
//! searched only where a new occurrence can be: the new text and the last
//! `longest stop - 1` bytes before it. When a stop shows, the row's whole text is
//! decoded once and cut by [`cut`], so the completion is exactly the text that
//! decoding everything after every token would give.

use sdft_core::SamplingParams;

use crate::tokenizer::TokenizerInfo as Tokenizer;
use crate::{Error, Result};

/// Where the earliest stop string starts in `text`, if any occurs.
pub fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter_map(|s| text.find(s.as_str())).min()
}

/// Where a completion's text is cut: at the earliest `stop` string's start, or
/// right after the earliest-ending `stop_after` match when that ends before (or
/// where) the stop string starts. `None` when neither occurs.
pub fn cut(text: &str, stops: &TextStops) -> Option<usize> {
    match (
        find_stop(text, &stops.stop),
        sdft_core::stop_after_end(&stops.stop_after, text),
    ) {
        (Some(s), Some(e)) => Some(if e <= s { e } else { s }),
        (s, e) => s.or(e),
    }
}

/// What must be matched on text under one setting: `stop` strings that are not
/// one special token's text (those end rows as ids; decoding skips special
/// tokens, so they never show in text) and the compiled `stop_after` patterns.
#[derive(Debug, Clone, Default)]
pub struct TextStops {
    pub stop: Vec<String>,
    pub stop_after: Vec<regex::Regex>,
    /// The longest `stop` string's length in bytes.
    longest: usize,
}

impl TextStops {
    pub fn new(tokenizer: &Tokenizer, params: &SamplingParams) -> Result<Self> {
        let stop: Vec<String> = params
            .stop
            .iter()
            .filter(|s| tokenizer.special_token_id(s).is_none())
            .cloned()
            .collect();
        let longest = stop.iter().map(String::len).max().unwrap_or(0);
        let stop_after = params
            .stop_after_patterns()
            .map_err(|e| Error::Other(e.to_string()))?;
        Ok(TextStops {
            stop,
            stop_after,
            longest,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.stop.is_empty() && self.stop_after.is_empty()
    }

    /// True when a stop shows in `text`, whose part before byte `from` has been
    /// checked: a `stop` string can only newly occur from `from` minus its length
    /// on; a `stop_after` pattern is matched on the whole text (it may span it, as
    /// a code block does).
    fn occurs_since(&self, text: &str, from: usize) -> bool {
        let mut start = from.saturating_sub(self.longest.saturating_sub(1));
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let tail = &text[start..];
        self.stop.iter().any(|s| tail.contains(s.as_str()))
            || self.stop_after.iter().any(|re| re.is_match(text))
    }
}

/// One row's text, grown a token at a time.
#[derive(Debug, Clone, Default)]
pub struct Detok {
    /// The decoded text so far (complete characters only).
    pub text: String,
    /// Tokens before `prefix` are fully in `text` and are not decoded again.
    prefix: usize,
    /// Tokens before `read` are in `text`.
    read: usize,
}

impl Detok {
    /// Appends the text of `generated`'s newest tokens (the whole generated ids so
    /// far); returns true when a stop string of `stops` now shows in the text.
    pub fn push(
        &mut self,
        tokenizer: &Tokenizer,
        generated: &[u32],
        stops: &TextStops,
    ) -> Result<bool> {
        let before = tokenizer.decode(&generated[self.prefix..self.read], true)?;
        let now = tokenizer.decode(&generated[self.prefix..], true)?;
        if now.len() <= before.len() || now.ends_with('\u{FFFD}') || !now.starts_with(&before) {
            // No complete new text yet (or a decoder that rewrote the context:
            // wait for more tokens, the whole-text check at the end decides).
            return Ok(false);
        }
        let from = self.text.len();
        self.text.push_str(&now[before.len()..]);
        self.prefix = self.read;
        self.read = generated.len();
        Ok(stops.occurs_since(&self.text, from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_stop_wins() {
        let stops = vec!["\nQ:".to_string(), "###".to_string()];
        assert_eq!(find_stop("answer 4\nQ: next ### x", &stops), Some(8));
        assert_eq!(find_stop("answer ### then\nQ:", &stops), Some(7));
        assert_eq!(find_stop("nothing here", &stops), None);
        assert_eq!(find_stop("", &[]), None);
    }

    #[test]
    fn stop_after_is_kept_and_a_stop_before_it_wins() {
        let stops = |stop: &[&str], after: &[&str]| TextStops {
            stop: stop.iter().map(|s| s.to_string()).collect(),
            stop_after: after
                .iter()
                .map(|p| regex::Regex::new(p).unwrap())
                .collect(),
            longest: stop.iter().map(|s| s.len()).max().unwrap_or(0),
        };
        let after = stops(&[], &["I cannot", "Sorry"]);
        assert_eq!(
            cut("Well, I cannot help. Sorry.", &after),
            Some("Well, I cannot".len())
        );
        let both = stops(&["\n###"], &["I cannot", "Sorry"]);
        assert_eq!(cut("x\n### I cannot", &both), Some(1));
        assert_eq!(cut("I cannot\n###", &both), Some("I cannot".len()));
        assert_eq!(cut("plain", &both), None);
        // A closed code block (the HumanEval rule): cut after the closing fence.
        let fence = stops(&[], &[r"(?s)```[^\n]*\n.*?```"]);
        let t = "Sure:\n```python\ndef f():\n    return 1\n```\nMore ```x```";
        assert_eq!(
            &t[..cut(t, &fence).unwrap()],
            "Sure:\n```python\ndef f():\n    return 1\n```"
        );
        assert_eq!(cut("```python\ndef f():", &fence), None);
    }
}
