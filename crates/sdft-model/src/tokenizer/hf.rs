//! HF model directories: `tokenizer.json`, `tokenizer_config.json`,
//! `chat_template.jinja`.

use std::path::Path;

use serde_json::{json, Value};
use tokenizers::Tokenizer;

use super::build::tok_err;
use super::TokenizerInfo;
use crate::{Error, Result};

fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// A special-token field of tokenizer_config.json: a string or `{"content": ...}`.
fn token_field(cfg: &Value, key: &str) -> Option<String> {
    match cfg.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// `chat_template`: a string, or a list of `{name, template}` (the `default` one).
fn chat_template_field(cfg: &Value) -> Option<String> {
    match cfg.get("chat_template")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => {
            let named = |n: &str| {
                list.iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some(n))
            };
            named("default")
                .or_else(|| list.first())
                .and_then(|t| t.get("template")?.as_str().map(str::to_string))
        }
        _ => None,
    }
}

/// See [`TokenizerInfo::from_hf_dir`].
pub(crate) fn from_hf_dir(dir: &Path) -> Result<TokenizerInfo> {
    let tj = dir.join("tokenizer.json");
    let source = tj.display().to_string();
    let bytes = std::fs::read(&tj).map_err(|e| Error::io(&tj, e))?;
    let tok = Tokenizer::from_bytes(&bytes)
        .map_err(|e| tok_err(&source, format_args!("invalid tokenizer.json: {e}")))?;

    let cfg_path = dir.join("tokenizer_config.json");
    let cfg = match read(&cfg_path)? {
        Some(b) => serde_json::from_slice(&b).map_err(|e| Error::Json {
            path: cfg_path.clone(),
            message: e.to_string(),
        })?,
        None => Value::Null,
    };
    let id_of = |key: &str| -> Result<Option<u32>> {
        let Some(t) = token_field(&cfg, key) else {
            return Ok(None);
        };
        tok.token_to_id(&t).map(Some).ok_or_else(|| {
            tok_err(
                &source,
                format_args!(
                    "{key} `{t}` of {} is not in the vocabulary",
                    cfg_path.display()
                ),
            )
        })
    };
    let bos_id = id_of("bos_token")?;
    let eos_id = id_of("eos_token")?;

    let mut chat_template = chat_template_field(&cfg);
    if chat_template.is_none() {
        let p = dir.join("chat_template.jinja");
        chat_template = read(&p)?.map(|b| String::from_utf8_lossy(&b).into_owned());
    }
    // Without an explicit flag, BOS is added if tokenizer.json's post-processor does.
    let add_bos = match cfg.get("add_bos_token").and_then(Value::as_bool) {
        Some(b) => b,
        None => bos_id.is_some_and(|b| {
            tok.encode("a", true)
                .is_ok_and(|e| e.get_ids().first() == Some(&b))
        }),
    };
    Ok(TokenizerInfo::new(
        tok,
        bos_id,
        eos_id,
        add_bos,
        chat_template,
        source,
    ))
}

/// See [`TokenizerInfo::to_tokenizer_config_json`].
pub(crate) fn tokenizer_config_json(info: &TokenizerInfo) -> Result<String> {
    let token = |id: Option<u32>| id.and_then(|i| info.id_to_token(i));
    let cfg = json!({
        "add_bos_token": info.add_bos(),
        "add_eos_token": false,
        "bos_token": token(info.bos_id()),
        "eos_token": token(info.eos_id()),
        "chat_template": info.chat_template(),
        "clean_up_tokenization_spaces": false,
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    serde_json::to_string_pretty(&cfg)
        .map_err(|e| info.error(format_args!("cannot serialize tokenizer_config.json: {e}")))
}
