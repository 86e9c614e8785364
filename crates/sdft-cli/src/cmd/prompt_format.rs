//! `--prompt-format paper|chat`: a stage's template in the format asked for, or by
//! default `chat` when the model carries a chat template and `paper` otherwise.

use anyhow::{Context, Result};
use sdft_data::{ChatFormat, PromptFormat, Template};
use sdft_model::tokenizer::TokenizerInfo;
use sdft_model::{assets, ModelFiles};

/// The model's chat template with its BOS/EOS token texts, if it has one.
pub fn chat_format(tok: &TokenizerInfo) -> Result<Option<ChatFormat>> {
    let Some(source) = tok.chat_template() else {
        return Ok(None);
    };
    let text = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i)).unwrap_or_default();
    let f = ChatFormat::new(source, &text(tok.bos_id()), &text(tok.eos_id()))
        .with_context(|| format!("the chat template of {}", tok.source()))?;
    Ok(Some(f))
}

/// `template` in the requested format (default: `chat` when the tokenizer has a
/// chat template, else `paper`).
pub fn apply(
    template: Template,
    requested: Option<PromptFormat>,
    tok: &TokenizerInfo,
) -> Result<Template> {
    let format = PromptFormat::resolve(requested, tok.chat_template().is_some());
    let chat = match format {
        PromptFormat::Chat => chat_format(tok)?,
        PromptFormat::Paper => None,
    };
    let name = template.name.clone();
    let t = template
        .with_prompt_format(format, chat)
        .with_context(|| format!("template {name} in the `{format}` prompt format"))?;
    tracing::info!(template = %t.name, prompt_format = %format, hash = %t.template_hash(), "prompt format");
    Ok(t)
}

/// The tokenizer of a model (path or known name), without loading its weights.
pub fn tokenizer(model: &str) -> Result<TokenizerInfo> {
    let path = assets::resolve_model(model)?;
    Ok(ModelFiles::open(&path)?.tokenizer)
}
