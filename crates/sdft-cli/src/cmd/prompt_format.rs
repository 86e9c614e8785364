//! `--prompt-format paper|chat` for the commands that take a `--model` string:
//! the library's one prompt-format builder ([`TokenizerInfo::apply_prompt_format`]).

use anyhow::Result;
use sdft_data::{PromptFormat, Template};
use sdft_model::{ModelSpec, TokenizerInfo};

/// `template` in the requested format (default: `chat` when the tokenizer has a
/// chat template, else `paper`).
pub fn apply(
    template: Template,
    requested: Option<PromptFormat>,
    tok: &TokenizerInfo,
) -> Result<Template> {
    Ok(tok.apply_prompt_format(template, requested)?)
}

/// The tokenizer of a model (path or known name), without loading its weights.
pub fn tokenizer(model: &str) -> Result<TokenizerInfo> {
    Ok(ModelSpec::new(model).tokenizer()?)
}
