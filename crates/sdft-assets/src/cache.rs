//! The local cache, `$SDFT_HOME` (default `~/.cache/sdft`): where a cached file
//! is, and the [`skip()`] key of one that is missing.

use std::path::PathBuf;

use crate::catalogue::{QWEN2_5_CODER_0_5B_INSTRUCT, SMOLLM2_135M_INSTRUCT};
use crate::olmo_eval::OLMO_EVAL_DIR;
use crate::skip::skip;
use crate::test_assets::{HUMANEVAL, LLAMA_SPM_FILES, LLAMA_TOKENIZER_JS};

/// `$SDFT_HOME`, or `~/.cache/sdft`.
pub fn sdft_home() -> PathBuf {
    if let Some(h) = std::env::var_os("SDFT_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/sdft")
}

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

/// `$SDFT_HOME/<rel>` when the file is there, else `None`; says nothing.
pub fn cached_quiet(rel: &str) -> Option<PathBuf> {
    let path = sdft_home().join(rel);
    path.is_file().then_some(path)
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
