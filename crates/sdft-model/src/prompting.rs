//! A model's prompt format: its BOS/EOS token texts, its chat format, and a
//! stage's template in the prompt format asked for (`paper` or `chat`). The one
//! place these are built from a tokenizer; every stage and every generator
//! (in-process or served) takes them from here.

use sdft_data::{ChatFormat, PromptFormat, Template};

use crate::{Error, Result, TokenizerInfo};

/// A model's BOS and EOS tokens as text (e.g. `<s>`, `</s>`; empty when the
/// tokenizer has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTexts {
    pub bos: String,
    pub eos: String,
}

impl TokenizerInfo {
    /// The BOS and EOS tokens as text.
    pub fn special_texts(&self) -> SpecialTexts {
        let text = |id: Option<u32>| id.and_then(|i| self.id_to_token(i)).unwrap_or_default();
        SpecialTexts {
            bos: text(self.bos_id()),
            eos: text(self.eos_id()),
        }
    }

    /// The model's chat template with its BOS/EOS texts, if it has one.
    pub fn chat_format(&self) -> Result<Option<ChatFormat>> {
        let Some(source) = self.chat_template() else {
            return Ok(None);
        };
        let s = self.special_texts();
        ChatFormat::new(source, &s.bos, &s.eos)
            .map(Some)
            .map_err(|e| Error::Tokenizer {
                source_name: self.source().to_string(),
                message: format!("its chat template: {e}"),
            })
    }

    /// The prompt format a stage uses: the one `requested`, else `chat` when the
    /// model has a chat template and `paper` otherwise.
    pub fn resolve_prompt_format(&self, requested: Option<PromptFormat>) -> PromptFormat {
        PromptFormat::resolve(requested, self.chat_template().is_some())
    }

    /// `template` in the requested prompt format ([`Self::resolve_prompt_format`]).
    pub fn apply_prompt_format(
        &self,
        template: Template,
        requested: Option<PromptFormat>,
    ) -> Result<Template> {
        let format = self.resolve_prompt_format(requested);
        let chat = match format {
            PromptFormat::Chat => self.chat_format()?,
            PromptFormat::Paper => None,
        };
        let name = template.name.clone();
        let t = template.with_prompt_format(format, chat).map_err(|e| {
            Error::Other(format!(
                "template {name} in the `{format}` prompt format: {e}"
            ))
        })?;
        tracing::info!(template = %t.name, prompt_format = %format, hash = %t.template_hash(), "prompt format");
        Ok(t)
    }
}
