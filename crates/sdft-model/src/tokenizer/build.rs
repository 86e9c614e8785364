//! Assembling [`Tokenizer`] pipelines: the BPE model, SentencePiece-style and
//! byte-level pipelines, special tokens and the BOS post-processor.

use std::collections::HashMap;
use std::fmt::Display;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Tokenizer};

use crate::Error;

/// The SentencePiece word-boundary marker.
pub(crate) const SPM_SPACE: &str = "\u{2581}";

/// llama.cpp token types (`tokenizer.ggml.token_type`).
pub(crate) mod token_type {
    pub const NORMAL: i64 = 1;
    pub const UNKNOWN: i64 = 2;
    pub const CONTROL: i64 = 3;
    pub const USER_DEFINED: i64 = 4;
}

/// A tokenizer error for `source`.
pub(crate) fn tok_err(source: &str, message: impl Display) -> Error {
    Error::Tokenizer {
        source_name: source.to_string(),
        message: message.to_string(),
    }
}

/// The vocabulary of a model: token strings by id and llama.cpp token types.
pub(crate) struct Pieces {
    pub tokens: Vec<String>,
    pub types: Vec<i64>,
}

impl Pieces {
    /// Token string to id; for duplicated strings the lowest id wins.
    pub fn index(&self) -> HashMap<&str, u32> {
        let mut map = HashMap::with_capacity(self.tokens.len());
        for (i, t) in self.tokens.iter().enumerate() {
            map.entry(t.as_str()).or_insert(i as u32);
        }
        map
    }
}

/// Options of the BPE model.
pub(crate) struct BpeOptions<'a> {
    pub unk: Option<&'a str>,
    pub byte_fallback: bool,
    pub ignore_merges: bool,
}

/// The BPE model over `vocab` with `merges` (in priority order).
pub(crate) fn bpe_model(
    source: &str,
    vocab: &Pieces,
    merges: Vec<(String, String)>,
    opts: BpeOptions<'_>,
) -> crate::Result<BPE> {
    let mut map = Vocab::with_capacity(vocab.tokens.len());
    let mut duplicates = 0usize;
    for (i, t) in vocab.tokens.iter().enumerate() {
        if map.contains_key(t) {
            duplicates += 1;
        } else {
            map.insert(t.clone(), i as u32);
        }
    }
    if duplicates > 0 {
        tracing::warn!(
            source,
            duplicates,
            "duplicated token strings: the lowest id is used"
        );
    }
    let mut builder = BPE::builder()
        .vocab_and_merges(map, merges)
        .byte_fallback(opts.byte_fallback)
        .ignore_merges(opts.ignore_merges);
    if let Some(unk) = opts.unk {
        builder = builder.unk_token(unk.to_string()).fuse_unk(true);
    }
    builder
        .build()
        .map_err(|e| tok_err(source, format_args!("cannot build the BPE model: {e}")))
}

/// Adds control/unknown tokens as special added tokens and user-defined tokens as
/// (non-special) added tokens, none of them normalized.
pub(crate) fn add_special_tokens(tok: &mut Tokenizer, vocab: &Pieces) {
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (t, &ty) in vocab.tokens.iter().zip(&vocab.types) {
        let added = || AddedToken::from(t.clone(), true).normalized(false);
        match ty {
            token_type::CONTROL | token_type::UNKNOWN => special.push(added()),
            token_type::USER_DEFINED => user.push(added().special(false)),
            _ => {}
        }
    }
    tok.add_special_tokens(&special);
    tok.add_tokens(&user);
}

/// A post-processor that prepends `bos` (as HF Llama tokenizers do), used when a
/// tokenizer.json is loaded by HF with `add_special_tokens=True`.
pub(crate) fn bos_processor(bos: &str, bos_id: u32) -> Option<PostProcessorWrapper> {
    TemplateProcessing::builder()
        .try_single(vec![format!("{bos}:0"), "$A:0".into()])
        .and_then(|b| {
            b.try_pair(vec![
                format!("{bos}:0"),
                "$A:0".into(),
                format!("{bos}:1"),
                "$B:1".into(),
            ])
        })
        .ok()?
        .special_tokens(vec![(bos.to_string(), bos_id)])
        .build()
        .ok()
        .map(PostProcessorWrapper::Template)
}

/// The SentencePiece-style pipeline: `▁` prefix (when `add_space_prefix`), spaces
/// as `▁`, no pre-tokenizer, byte-fallback decoding.
pub(crate) fn spm_pipeline(tok: &mut Tokenizer, add_space_prefix: bool) -> crate::Result<()> {
    let replace = Replace::new(" ", SPM_SPACE).map_err(|e| tok_err("spm pipeline", e))?;
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new(SPM_SPACE.into()).into(), replace.into()]).into()
    } else {
        replace.into()
    };
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPM_SPACE, " ")
            .map_err(|e| tok_err("spm pipeline", e))?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_normalizer(Some(normalizer));
    tok.with_pre_tokenizer(None::<PreTokenizerWrapper>);
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(())
}

/// The byte-level BPE pipeline with pre-tokenizer `pre`.
pub(crate) fn byte_level_pipeline(tok: &mut Tokenizer, pre: PreTokenizerWrapper) {
    tok.with_normalizer(None::<NormalizerWrapper>);
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(ByteLevel::default()));
}
