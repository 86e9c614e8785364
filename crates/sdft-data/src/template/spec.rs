//! User templates from TOML.
//!
//! Every key is optional except `prompt`; defaults are the alpaca-style structure
//! (`bos = true`, `turn_bos = true`, `eos = true`, `system_format = "{system}"`,
//! `separator = ""`, `response = "{response}"`). A template can also start from a
//! preset with `base = "NAME"` and override only some keys. `user_format` (the
//! user message in the `chat` prompt format) defaults, when `prompt` is given, to
//! `{query}`, or `{query}\n\n{resp}` for a distillation prompt; with only `base`,
//! to the preset's.

use serde::Deserialize;

use super::Template;
use crate::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: Option<String>,
    base: Option<String>,
    description: Option<String>,
    system: Option<String>,
    system_format: Option<String>,
    system_in_query: Option<bool>,
    separator: Option<String>,
    bos: Option<bool>,
    turn_bos: Option<bool>,
    prompt: Option<String>,
    user_format: Option<String>,
    assistant_prefix: Option<String>,
    response: Option<String>,
    eos: Option<bool>,
    stop: Option<Vec<String>>,
    display_bos: Option<String>,
    display_eos: Option<String>,
}

pub(super) fn from_toml(source: &str, text: &str) -> Result<Template> {
    let spec: Spec = toml::from_str(text).map_err(|e| Error::Template {
        name: source.to_string(),
        message: e.to_string(),
    })?;
    let mut t = match &spec.base {
        Some(b) => super::presets::preset(b).ok_or_else(|| Error::UnknownTemplate {
            name: b.clone(),
            available: super::PRESET_NAMES.join(", "),
        })?,
        None => {
            if spec.prompt.is_none() {
                return Err(Error::Template {
                    name: source.to_string(),
                    message: "missing key `prompt` (the user turn, with {query}); or set `base` to a preset".into(),
                });
            }
            super::presets::preset("alpaca").expect("alpaca preset exists")
        }
    };
    if spec.base.is_none() {
        // Start from neutral defaults, not from alpaca's texts.
        t.description = String::new();
        t.system = String::new();
        t.system_format = "{system}".into();
        t.separator = String::new();
        t.stop = Vec::new();
    }
    t.name = spec.name.unwrap_or_default();
    // A new `prompt` without a `user_format` gets the default for its kind: the
    // query alone, or the query and the reference apart in a distillation template.
    if spec.prompt.is_some() && spec.user_format.is_none() {
        t.user_format = if spec.prompt.as_deref().is_some_and(|p| p.contains("{resp}")) {
            "{query}\n\n{resp}".into()
        } else {
            "{query}".into()
        };
    }
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = spec.$f { t.$f = v; } )* };
    }
    set!(
        description,
        system,
        system_format,
        system_in_query,
        separator,
        bos,
        turn_bos,
        prompt,
        user_format,
        assistant_prefix,
        response,
        eos,
        stop,
        display_bos,
        display_eos
    );
    let mut checked = t.clone();
    if checked.name.is_empty() {
        checked.name = source.to_string();
    }
    checked.validate()?;
    Ok(t)
}
