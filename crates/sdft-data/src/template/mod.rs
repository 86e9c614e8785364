//! Prompt templates: an [`Example`] into prompt pieces and a training target.
//!
//! A [`Template`] follows the structure of the paper's code (the `reproduce`
//! branch's LLaMA-Factory `Template` class; see `docs/templates.md`):
//!
//! ```text
//! turn 0:  [BOS] system_format(system) separator  prompt(query, resp) assistant_prefix
//! turn t:  separator [BOS]                         prompt(query, resp) assistant_prefix
//! target:  response(response) [EOS]
//! ```
//!
//! Each part is its own [`PromptPiece`], so a model encodes the pieces separately
//! (as the paper's code does) and BOS/EOS are token markers, never literal text. The
//! system block (and the separator after it) is left out when the system text is
//! empty. `{query}` is the instruction, or `instruction + "\n" + input` when the input
//! is non-empty, stripped; `{resp}` (distillation templates) is the same turn's
//! reference response, stripped. Other braces are literal text.
//!
//! ```
//! use sdft_core::Example;
//! use sdft_data::Template;
//!
//! let t = Template::preset("alpaca").unwrap();
//! let ex = Example::new("Add 2 and 3.", "5");
//! assert_eq!(
//!     t.render_prompt(&ex).unwrap().to_string(),
//!     "<s>Below is an instruction that describes a task. Write a response that \
//!      appropriately completes the request.\n\n### Instruction:\nAdd 2 and 3.\n\n### Response:\n"
//! );
//! assert_eq!(t.render_turns(&ex).unwrap()[0].response.to_string(), "5</s>");
//! ```

mod chat_format;
mod presets;
mod spec;

use sdft_core::{Example, Prompt, PromptPiece, SamplingParams};
use sha2::{Digest, Sha256};

pub use chat_format::{ChatFormat, PromptFormat, SystemMessage};
pub use presets::{GCG_SUFFIX, PRESET_NAMES};

use crate::{Error, Result};

/// A prompt template. Build one from a preset ([`Template::preset`]), a TOML file
/// ([`Template::from_toml_file`]), or by hand with struct update syntax.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Template {
    pub name: String,
    pub description: String,
    /// Default system text; an example's own `system` replaces it.
    pub system: String,
    /// Format of the system block, with `{system}`.
    pub system_format: String,
    /// Put the system block inside the first user query (Llama-2 chat) instead of
    /// before it.
    pub system_in_query: bool,
    /// Text after the system block, and before every later turn.
    pub separator: String,
    /// BOS marker at the start of the conversation.
    pub bos: bool,
    /// BOS marker at the start of every later turn (after the separator).
    pub turn_bos: bool,
    /// The user turn, with `{query}` and, in distillation templates, `{resp}`.
    pub prompt: String,
    /// The user message in the `chat` prompt format, with `{query}` and, in
    /// distillation templates, `{resp}` (see `docs/templates.md`).
    pub user_format: String,
    /// Forced start of the assistant's reply: part of the prompt, not the response.
    pub assistant_prefix: String,
    /// The assistant turn (training target), with `{response}`.
    pub response: String,
    /// EOS marker after each response.
    pub eos: bool,
    /// Stop strings for generation with this template.
    pub stop: Vec<String>,
    /// How BOS and EOS are shown when a prompt is printed.
    pub display_bos: String,
    pub display_eos: String,
    /// The model's chat template when the template renders in the `chat` prompt
    /// format ([`Template::with_prompt_format`]); `None` renders the paper's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatFormat>,
    /// Which system message prompts carry ([`Template::with_system_message`]);
    /// `preset` (the `system` text above) unless a stage chose otherwise.
    #[serde(skip_serializing_if = "is_preset")]
    pub system_message: SystemMessage,
}

fn is_preset(m: &SystemMessage) -> bool {
    *m == SystemMessage::Preset
}

/// One turn rendered: the prompt pieces and the target pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedTurn {
    pub prompt: Prompt,
    pub response: Prompt,
}

/// Replaces `{name}` placeholders in one pass (so substituted text is never
/// rescanned), leaving every other brace as literal text.
fn fill(format: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(format.len() + 64);
    let mut rest = format;
    'outer: while let Some(pos) = rest.find('{') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        for (name, value) in values {
            let key_len = name.len() + 2;
            if tail.len() >= key_len
                && tail.as_bytes()[key_len - 1] == b'}'
                && &tail[1..key_len - 1] == *name
            {
                out.push_str(value);
                rest = &tail[key_len..];
                continue 'outer;
            }
        }
        out.push('{');
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

impl Template {
    /// A named preset (see [`PRESET_NAMES`]): the paper's templates byte-exact, the
    /// Llama-3 variants, `llama2-chat` and `chatml`.
    pub fn preset(name: &str) -> Option<Template> {
        presets::preset(name)
    }

    /// All presets, in [`PRESET_NAMES`] order.
    pub fn presets() -> Vec<Template> {
        PRESET_NAMES
            .iter()
            .filter_map(|n| presets::preset(n))
            .collect()
    }

    /// A preset by name, or else a TOML template file at that path.
    pub fn load(name_or_path: &str) -> Result<Template> {
        if let Some(t) = presets::preset(name_or_path) {
            return Ok(t);
        }
        let path = std::path::Path::new(name_or_path);
        if path.is_file() {
            return Template::from_toml_file(path);
        }
        Err(Error::UnknownTemplate {
            name: name_or_path.to_string(),
            available: PRESET_NAMES.join(", "),
        })
    }

    /// Parses a template from TOML (see `docs/templates.md` for the keys).
    pub fn from_toml_str(name: &str, toml: &str) -> Result<Template> {
        spec::from_toml(name, toml)
    }

    /// Reads a template from a TOML file; its name defaults to the file stem.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Template> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "custom".into());
        spec::from_toml(&path.display().to_string(), &text).map(|mut t| {
            if t.name.is_empty() {
                t.name = stem;
            }
            t
        })
    }

    /// True when the template shows the reference response (`{resp}`): a
    /// distillation (rewriting) template.
    pub fn uses_reference(&self) -> bool {
        self.prompt.contains("{resp}")
    }

    /// This template with another system message: `model` and `none` drop the
    /// preset's system text (see [`SystemMessage`]); an example's own system text
    /// still replaces it. The choice is part of [`Template::template_hash`].
    ///
    /// ```
    /// use sdft_data::{SystemMessage, Template};
    /// let t = Template::preset("alpaca").unwrap();
    /// let m = t.clone().with_system_message(SystemMessage::Model);
    /// assert!(m.system.is_empty());
    /// assert_ne!(m.template_hash(), t.template_hash());
    /// ```
    pub fn with_system_message(mut self, mode: SystemMessage) -> Template {
        if mode != SystemMessage::Preset {
            self.system.clear();
        }
        self.system_message = mode;
        self
    }

    /// The system text used for an example: its own when non-empty, else the
    /// template's (an empty cell, as CSV writes for "none", does not erase it).
    pub fn system_for<'a>(&'a self, ex: &'a Example) -> &'a str {
        ex.system
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.system)
    }

    fn turn_prompt(&self, index: usize, system: &str, query: &str, resp: &str) -> Prompt {
        let mut p = Prompt::default();
        // Python's `str.strip()`, as the reference's template code strips them.
        let query = sdft_core::answer::py_strip(query);
        let resp = sdft_core::answer::py_strip(resp);
        let system_block =
            (!system.is_empty()).then(|| fill(&self.system_format, &[("system", system)]));
        let mut query_text = query.to_string();
        if index == 0 {
            if self.bos {
                p.push(PromptPiece::Bos);
            }
            if let Some(block) = system_block {
                if self.system_in_query {
                    query_text = format!("{block}{query}");
                } else {
                    p.push(PromptPiece::Text(block));
                    p.push(PromptPiece::Text(self.separator.clone()));
                }
            }
        } else {
            p.push(PromptPiece::Text(self.separator.clone()));
            if self.turn_bos {
                p.push(PromptPiece::Bos);
            }
        }
        let mut text = fill(&self.prompt, &[("query", &query_text), ("resp", resp)]);
        text.push_str(&self.assistant_prefix);
        p.push(PromptPiece::Text(text));
        p
    }

    /// The target pieces for a response: `response` format, then EOS. In the
    /// `chat` format: the response and what the chat template emits after an
    /// assistant message (ChatML's `<|im_end|>\n`), as one text piece.
    pub fn render_response(&self, response: &str) -> Result<Prompt> {
        if let Some(chat) = &self.chat {
            let mut turns = self.chat_turns(chat, &Example::new("x", response), response)?;
            return Ok(turns.pop().map(|t| t.response).unwrap_or_default());
        }
        Ok(self.paper_response(response))
    }

    fn paper_response(&self, response: &str) -> Prompt {
        let mut p = Prompt::default();
        p.push(PromptPiece::Text(fill(
            &self.response,
            &[("response", response)],
        )));
        if self.eos {
            p.push(PromptPiece::Eos);
        }
        p
    }

    /// Every turn of an example (history first, the final turn last), each with its
    /// prompt and its reference response as target. This is what training supervises:
    /// every assistant turn, with user turns masked. Errors only in the `chat`
    /// format, when the chat template fails to render the conversation.
    pub fn render_turns(&self, ex: &Example) -> Result<Vec<RenderedTurn>> {
        self.render_turns_with_response(ex, &ex.output)
    }

    /// Like [`Template::render_turns`], with the final turn's target replaced by
    /// `response` (a distilled rewrite).
    pub fn render_turns_with_response(
        &self,
        ex: &Example,
        response: &str,
    ) -> Result<Vec<RenderedTurn>> {
        if let Some(chat) = &self.chat {
            return self.chat_turns(chat, ex, response);
        }
        let system = self.system_for(ex);
        let turns = ex.turns();
        let n = turns.len();
        Ok(turns
            .iter()
            .enumerate()
            .map(|(i, t)| RenderedTurn {
                prompt: self.turn_prompt(i, system, &t.user, &t.assistant),
                response: self.paper_response(if i + 1 == n { response } else { &t.assistant }),
            })
            .collect())
    }

    /// The prompt to generate the final turn from: the earlier turns in full
    /// (prompt and reference response), then the final turn's prompt. With a
    /// distillation template, each turn's `{resp}` is that turn's own reference.
    /// In the `chat` format: the chat template's rendering of the conversation with
    /// the assistant turn opened, then the assistant prefix, as one text piece.
    pub fn render_prompt(&self, ex: &Example) -> Result<Prompt> {
        if let Some(chat) = &self.chat {
            return self.chat_prompt(chat, ex);
        }
        let mut out = Prompt::default();
        let turns = self.render_turns(ex)?;
        let n = turns.len();
        for (i, t) in turns.into_iter().enumerate() {
            out.extend(t.prompt);
            if i + 1 < n {
                out.extend(t.response);
            }
        }
        Ok(out)
    }

    /// The prompt format this template renders in.
    pub fn prompt_format(&self) -> PromptFormat {
        if self.chat.is_some() {
            PromptFormat::Chat
        } else {
            PromptFormat::Paper
        }
    }

    /// This template in `format`: `paper` drops any chat template; `chat` renders
    /// through `chat` (the model's chat template; an error when it is `None`) and
    /// also stops generation at its end-of-turn token (the template's own stop
    /// strings are kept). The chat template is tried on a probe example (with and without a
    /// system message, one and two turns) so a template that cannot render this
    /// preset's conversations fails here, not in the middle of a stage.
    pub fn with_prompt_format(
        mut self,
        format: PromptFormat,
        chat: Option<ChatFormat>,
    ) -> Result<Template> {
        match format {
            PromptFormat::Paper => {
                if let Some(chat) = self.chat.take() {
                    if chat.stop_added {
                        self.stop.retain(|s| s != chat.end_of_turn());
                    }
                }
                Ok(self)
            }
            PromptFormat::Chat => {
                let chat = chat.ok_or_else(|| Error::Template {
                    name: self.name.clone(),
                    message: "prompt format `chat` needs the model's chat template, and the model has none \
                              (use the `paper` prompt format)"
                        .into(),
                })?;
                let mut this = self.with_prompt_format(PromptFormat::Paper, None)?;
                this.validate()?;
                let mut chat = chat;
                chat.stop_added = !this.stop.iter().any(|s| s == chat.end_of_turn());
                if chat.stop_added {
                    this.stop.push(chat.end_of_turn().to_string());
                }
                this.chat = Some(chat);
                let this_ref = &this;
                let probe = Example::new("Question?", "Answer.")
                    .with_history(vec![sdft_core::Turn::new("First?", "First answer.")]);
                for ex in [
                    probe.clone(),
                    probe.with_system("Be brief.").with_history(Vec::new()),
                ] {
                    this_ref.render_prompt(&ex)?;
                    this_ref.render_turns(&ex)?;
                }
                Ok(this)
            }
        }
    }

    /// The template hash recorded by every stage (`template_hash` in distill
    /// summaries, `run.json`, `results.json` and pipeline manifests): the SHA-256
    /// (hex) of the template serialized as JSON, which holds every part the prompts
    /// are made of: the paper's strings, the user-message format, and in the
    /// `chat` format the chat template's source with its BOS/EOS texts.
    pub fn template_hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("a template serializes to JSON");
        Sha256::digest(&json)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A prompt shown with this template's BOS/EOS display strings.
    pub fn display(&self, prompt: &Prompt) -> String {
        prompt.display_with(&self.display_bos, &self.display_eos)
    }

    /// `params` with this template's stop strings added (each once): the one
    /// place a stage's sampling and its template's stops are merged.
    pub fn sampling(&self, params: &SamplingParams) -> SamplingParams {
        let mut p = params.clone();
        for s in &self.stop {
            if !p.stop.contains(s) {
                p.stop.push(s.clone());
            }
        }
        p
    }

    /// Checks that the formats hold their placeholders.
    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Error::Template {
            name: self.name.clone(),
            message,
        };
        if !self.prompt.contains("{query}") {
            return Err(bad(format!(
                "`prompt` must contain {{query}}, found {:?}",
                self.prompt
            )));
        }
        if !self.response.contains("{response}") {
            return Err(bad(format!(
                "`response` must contain {{response}}, found {:?}",
                self.response
            )));
        }
        if !self.system_format.contains("{system}") {
            return Err(bad(format!(
                "`system_format` must contain {{system}}, found {:?}",
                self.system_format
            )));
        }
        if !self.user_format.contains("{query}") {
            return Err(bad(format!(
                "`user_format` must contain {{query}}, found {:?}",
                self.user_format
            )));
        }
        if self.uses_reference() && !self.user_format.contains("{resp}") {
            return Err(bad(format!(
                "`user_format` must contain {{resp}} in a distillation template (its `prompt` shows the reference), found {:?}",
                self.user_format
            )));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(bad("`stop` strings must be non-empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn fill_is_single_pass_and_keeps_other_braces() {
        assert_eq!(
            fill("a {query} b", &[("query", "{resp}"), ("resp", "X")]),
            "a {resp} b"
        );
        assert_eq!(fill("as {answer}.", &[("query", "q")]), "as {answer}.");
        assert_eq!(fill("{query}{", &[("query", "q")]), "q{");
        assert_eq!(fill("{{query}}", &[("query", "q")]), "{q}");
    }
}
