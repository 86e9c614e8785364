//! The `chat` prompt format: a preset's parts rendered through a model's own chat
//! template (HF Jinja).
//!
//! A [`Template`] in the `chat` format renders an example as the messages
//!
//! ```text
//! system:    the example's own system text, else the template's `system` (left out when empty)
//! user:      user_format(query, resp)          one per turn, oldest first
//! assistant: assistant_prefix + response       every earlier turn
//! ```
//!
//! and hands them to the chat template. A turn's prompt is what the template adds
//! for the user message with the assistant turn opened (`add_generation_prompt`;
//! with an `assistant_prefix`, everything the template writes before the response
//! when the assistant's text starts with the prefix); a turn's target is what the template emits for the assistant message after that
//! (the response, then e.g. ChatML's `<|im_end|>\n`). The turns are rendered
//! incrementally and concatenate to exactly the whole conversation's rendering, so
//! a prompt is the text `tokenizer.apply_chat_template(messages,
//! add_generation_prompt=True)` gives.

use std::sync::Arc;

use sdft_core::{Example, Prompt};

use super::{fill, RenderedTurn, Template};
use crate::{ChatTemplate, Error, Result};

/// How a stage formats its prompts.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PromptFormat {
    /// The presets byte-exact, as the paper writes them.
    #[default]
    Paper,
    /// The preset's parts rendered through the model's own chat template.
    Chat,
}

impl PromptFormat {
    /// `paper` or `chat`.
    pub fn as_str(self) -> &'static str {
        match self {
            PromptFormat::Paper => "paper",
            PromptFormat::Chat => "chat",
        }
    }

    /// The format a stage uses: the one asked for, else `chat` when the model
    /// carries a chat template and `paper` otherwise.
    pub fn resolve(requested: Option<PromptFormat>, model_has_chat_template: bool) -> PromptFormat {
        requested.unwrap_or(if model_has_chat_template {
            PromptFormat::Chat
        } else {
            PromptFormat::Paper
        })
    }
}

/// Which system message a prompt carries (an evaluation setting: safety is best
/// probed the way the model is deployed, under its own default system message).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SystemMessage {
    /// The template preset's system text (the paper's; `alpaca`: "Below is an
    /// instruction that describes a task...").
    #[default]
    Preset,
    /// No system text of the template's: in the `chat` format the model's chat
    /// template adds its own default system message, if it has one (Qwen2.5: "You
    /// are Qwen, created by Alibaba Cloud. You are a helpful assistant."); in the
    /// `paper` format there is no system block.
    Model,
    /// No system text at all: in the `chat` format an explicit empty system message
    /// (so a chat template's default is not added either); in the `paper` format no
    /// system block.
    None,
}

impl SystemMessage {
    /// `preset`, `model` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemMessage::Preset => "preset",
            SystemMessage::Model => "model",
            SystemMessage::None => "none",
        }
    }
}

impl std::fmt::Display for SystemMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SystemMessage {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "preset" => Ok(SystemMessage::Preset),
            "model" => Ok(SystemMessage::Model),
            "none" => Ok(SystemMessage::None),
            other => Err(Error::Template {
                name: "system_message".into(),
                message: format!("{other:?}: expected `preset`, `model` or `none`"),
            }),
        }
    }
}

impl std::fmt::Display for PromptFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PromptFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "paper" => Ok(PromptFormat::Paper),
            "chat" => Ok(PromptFormat::Chat),
            other => Err(Error::Template {
                name: "prompt_format".into(),
                message: format!("expected `paper` or `chat`, found `{other}`"),
            }),
        }
    }
}

/// A model's chat template with the BOS/EOS token texts it is rendered with, and
/// what it emits around an assistant message.
#[derive(Clone)]
pub struct ChatFormat {
    source: String,
    bos_token: String,
    eos_token: String,
    compiled: Arc<ChatTemplate>,
    end_of_turn: String,
    /// Whether [`Template::with_prompt_format`] added `end_of_turn` to the
    /// template's stop strings (and so takes it out again for `paper`).
    pub(super) stop_added: bool,
}

impl std::fmt::Debug for ChatFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatFormat")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("end_of_turn", &self.end_of_turn)
            .field("source_chars", &self.source.len())
            .finish()
    }
}

impl PartialEq for ChatFormat {
    fn eq(&self, other: &Self) -> bool {
        (&self.source, &self.bos_token, &self.eos_token)
            == (&other.source, &other.bos_token, &other.eos_token)
    }
}

impl Eq for ChatFormat {}

impl serde::Serialize for ChatFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ChatFormat", 4)?;
        st.serialize_field("chat_template", &self.source)?;
        st.serialize_field("bos_token", &self.bos_token)?;
        st.serialize_field("eos_token", &self.eos_token)?;
        st.serialize_field("end_of_turn", &self.end_of_turn)?;
        st.end()
    }
}

/// Content of the probe assistant message that finds what a template emits after
/// an assistant message.
const PROBE: &str = "SDFT_PROBE_RESPONSE";

fn chat_error(message: impl Into<String>) -> Error {
    Error::Template {
        name: "chat_template".into(),
        message: message.into(),
    }
}

impl ChatFormat {
    /// Compiles a chat template; `bos_token` and `eos_token` are the token texts the
    /// template sees (HF passes them as variables). Fails when the template does not
    /// compile, cannot render a user/assistant exchange, or emits nothing after an
    /// assistant message (no end-of-turn to stop at).
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let compiled = Arc::new(ChatTemplate::new(source)?);
        let mut f = ChatFormat {
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            compiled,
            end_of_turn: String::new(),
            stop_added: false,
        };
        let user = vec![("user".to_string(), "Hi".to_string())];
        let mut full = user.clone();
        full.push(("assistant".to_string(), PROBE.to_string()));
        let text = f.render(&full, false)?;
        let after = text
            .rfind(PROBE)
            .map(|at| &text[at + PROBE.len()..])
            .ok_or_else(|| {
                chat_error("an assistant message's content does not appear in the rendered text")
            })?;
        let eot = after.split_whitespace().next().unwrap_or("");
        if eot.is_empty() {
            return Err(chat_error(
                "the template emits nothing after an assistant message: no end-of-turn token to stop at",
            ));
        }
        f.end_of_turn = eot.to_string();
        Ok(f)
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// The end-of-turn token's text: the first word the template emits after an
    /// assistant message (ChatML `<|im_end|>`, Llama-3 `<|eot_id|>`, Llama-2 `</s>`).
    pub fn end_of_turn(&self) -> &str {
        &self.end_of_turn
    }

    /// Renders `(role, content)` messages.
    pub fn render(
        &self,
        messages: &[(String, String)],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.compiled.render(
            messages,
            add_generation_prompt,
            &self.bos_token,
            &self.eos_token,
        )
    }
}

/// `text[prefix.len()..]` when `text` starts with `prefix`, else an error naming the
/// template and what failed.
fn after<'a>(template: &Template, text: &'a str, prefix: &str, what: &str) -> Result<&'a str> {
    text.strip_prefix(prefix).ok_or_else(|| Error::Template {
        name: template.name.clone(),
        message: format!(
            "the chat template's rendering of {what} does not extend the rendering before it, \
             so the turn cannot be split into prompt and target"
        ),
    })
}

impl Template {
    /// The messages of an example in the `chat` format (see the module docs): the
    /// system message (if any), then per turn a user and, for all but the final
    /// turn, an assistant message. The final turn's assistant content is returned
    /// separately (`assistant_prefix + response`).
    fn chat_messages(&self, ex: &Example, final_response: &str) -> (Vec<(String, String)>, String) {
        let mut msgs = Vec::new();
        let system = self.system_for(ex);
        if !system.is_empty() || self.system_message == SystemMessage::None {
            msgs.push(("system".to_string(), system.to_string()));
        }
        let turns = ex.turns();
        let n = turns.len();
        for (i, t) in turns.iter().enumerate() {
            let user = fill(
                &self.user_format,
                &[
                    ("query", sdft_core::answer::py_strip(&t.user)),
                    ("resp", sdft_core::answer::py_strip(&t.assistant)),
                ],
            );
            msgs.push(("user".to_string(), user));
            if i + 1 < n {
                msgs.push((
                    "assistant".to_string(),
                    format!("{}{}", self.assistant_prefix, t.assistant),
                ));
            }
        }
        (msgs, format!("{}{}", self.assistant_prefix, final_response))
    }

    /// The whole conversation of `ex` as `(role, content)` messages, as the
    /// `chat` prompt format hands them to the model's chat template, ending with
    /// the assistant message `assistant_prefix + final_response`.
    pub fn chat_conversation(&self, ex: &Example, final_response: &str) -> Vec<(String, String)> {
        let (mut msgs, last) = self.chat_messages(ex, final_response);
        msgs.push(("assistant".to_string(), last));
        msgs
    }

    /// The conversation `msgs` (ending with a user message) with the assistant
    /// turn opened: the template's generation prompt, or with an assistant prefix,
    /// everything the template writes before the response when the assistant's
    /// text starts with the prefix (so Llama-2's `[/INST] ` space and the prefix's
    /// own trailing space are kept).
    fn open_assistant(&self, chat: &ChatFormat, msgs: &[(String, String)]) -> Result<String> {
        if self.assistant_prefix.is_empty() {
            return chat.render(msgs, true);
        }
        let mut with = msgs.to_vec();
        with.push((
            "assistant".into(),
            format!("{}{PROBE}", self.assistant_prefix),
        ));
        let text = chat.render(&with, false)?;
        let at = text.rfind(PROBE).ok_or_else(|| Error::Template {
            name: self.name.clone(),
            message: "the chat template does not write the assistant's text as given, so the \
                      assistant prefix cannot start it"
                .into(),
        })?;
        Ok(text[..at].to_string())
    }

    /// Every turn of an example rendered through the chat template: each turn's
    /// prompt (the user message, the assistant turn opened, the assistant prefix)
    /// and target (the response and what the template emits after it), one text
    /// piece each. The pieces concatenate to the whole conversation's rendering.
    pub(super) fn chat_turns(
        &self,
        chat: &ChatFormat,
        ex: &Example,
        final_response: &str,
    ) -> Result<Vec<RenderedTurn>> {
        let msgs = self.chat_conversation(ex, final_response);
        let mut out = Vec::new();
        let mut done = String::new();
        let mut upto = 0;
        while upto < msgs.len() {
            // Messages through the next user message, then through its answer.
            let user_at = (upto..msgs.len())
                .find(|i| msgs[*i].0 == "user")
                .expect("every turn has a user message");
            let opened = self.open_assistant(chat, &msgs[..=user_at])?;
            let with_answer = chat.render(&msgs[..=user_at + 1], false)?;
            let turn = out.len() + 1;
            let prompt = after(self, &opened, &done, &format!("turn {turn}'s user message"))?;
            let target = after(
                self,
                &with_answer,
                &opened,
                &format!("turn {turn}'s assistant message"),
            )?;
            out.push(RenderedTurn {
                prompt: Prompt::raw(prompt),
                response: Prompt::raw(target),
            });
            done = with_answer;
            upto = user_at + 2;
        }
        Ok(out)
    }

    /// The prompt to generate the final turn from, in the `chat` format: the whole
    /// conversation through the final user message, the assistant turn opened, and
    /// the assistant prefix.
    pub(super) fn chat_prompt(&self, chat: &ChatFormat, ex: &Example) -> Result<Prompt> {
        let (msgs, _) = self.chat_messages(ex, "");
        Ok(Prompt::raw(self.open_assistant(chat, &msgs)?))
    }
}
