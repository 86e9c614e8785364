//! [`TokenizerInfo`] from GGUF `tokenizer.ggml.*` metadata, following llama.cpp's
//! llama-vocab.cpp (`gpt2` byte-level BPE and `llama` SentencePiece models).

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use super::build::{self, tok_err, token_type, BpeOptions, Pieces};
use super::TokenizerInfo;
use crate::gguf::{GgufFile, Metadata};
use crate::Result;

/// Llama-3's pre-tokenizer regex (as in its tokenizer.json).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's pre-tokenizer regex (as in its tokenizer.json).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` values understood, for error messages.
const SUPPORTED_PRE: &str = "default, gpt2, mpt, olmo, smollm, starcoder, refact, command-r, \
     codeshell, exaone, minerva-7b, llama3, llama-v3, llama-bpe, falcon3, pixtral, dbrx, \
     smaug-bpe, qwen2, deepseek-r1-qwen, stablelm2, megrez";

/// How a byte-level BPE tokenizer splits text before BPE.
struct PreTokenization {
    pre: PreTokenizerWrapper,
    ignore_merges: bool,
    add_bos: bool,
}

fn split_then_bytes(source: &str, regex: &str) -> Result<PreTokenizerWrapper> {
    let split = Split::new(
        SplitPattern::Regex(regex.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| tok_err(source, format_args!("bad pre-tokenizer regex: {e}")))?;
    Ok(Sequence::new(vec![
        split.into(),
        ByteLevel::new(false, true, false).into(),
    ])
    .into())
}

/// The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre = pre`.
fn pre_tokenization(source: &str, pre: &str) -> Result<PreTokenization> {
    let gpt2: PreTokenizerWrapper = ByteLevel::new(false, true, true).into();
    let plain = |pre| PreTokenization {
        pre,
        ignore_merges: false,
        add_bos: false,
    };
    Ok(match pre {
        "default" | "gpt2" | "mpt" | "olmo" => plain(gpt2),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
        | "minerva-7b" => plain(Sequence::new(vec![Digits::new(true).into(), gpt2]).into()),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => PreTokenization {
            pre: split_then_bytes(source, LLAMA3_REGEX)?,
            ignore_merges: true,
            add_bos: true,
        },
        "dbrx" | "smaug-bpe" => plain(split_then_bytes(source, LLAMA3_REGEX)?),
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "megrez" => {
            plain(split_then_bytes(source, QWEN2_REGEX)?)
        }
        other => {
            return Err(tok_err(
                source,
                format_args!(
                    "unsupported pre-tokenizer tokenizer.ggml.pre = `{other}` (supported: {SUPPORTED_PRE})"
                ),
            ))
        }
    })
}

/// A token-id metadata value, checked against the vocabulary size.
fn token_id(
    md: &Metadata,
    source: &str,
    key: &str,
    n: usize,
    default: Option<u32>,
) -> Result<Option<u32>> {
    let id = md.get_u32(key)?.or(default);
    match id {
        Some(id) if id as usize >= n => Err(tok_err(
            source,
            format_args!("{key} = {id} is outside the vocabulary ({n} tokens)"),
        )),
        _ => Ok(id),
    }
}

/// BPE merges from SentencePiece scores, as HF's `SentencePieceExtractor`: every
/// split of every piece into two vocabulary pieces, ordered by the score of the
/// merged piece (highest first), ties by (left id, right id). This tie order is
/// that of the converter that made Llama-2's published tokenizer.json, whose merges
/// this reproduces exactly (newer converters order ties by merged-piece id first;
/// only the all-`▁` pieces tie in Llama-2).
pub(crate) fn merges_from_scores(pieces: &Pieces, scores: &[f32]) -> Vec<(String, String)> {
    let index = pieces.index();
    let mut all: Vec<(f32, u32, u32)> = Vec::new();
    for (piece, &score) in pieces.tokens.iter().zip(scores) {
        for (pos, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(pos);
            if let (Some(&li), Some(&ri)) = (index.get(l), index.get(r)) {
                all.push((score, li, ri));
            }
        }
    }
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let tok = |i: u32| pieces.tokens[i as usize].clone();
    all.into_iter().map(|(_, l, r)| (tok(l), tok(r))).collect()
}

fn gpt2(md: &Metadata, source: &str, pieces: &Pieces) -> Result<(Tokenizer, bool)> {
    let pre = md.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
    let pt = pre_tokenization(source, pre)?;
    let merges = md
        .require_str_array("tokenizer.ggml.merges")?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| {
                    tok_err(
                        source,
                        format_args!("merge {i} `{m}` is not two tokens separated by a space"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = BpeOptions {
        unk: None,
        byte_fallback: false,
        ignore_merges: pt.ignore_merges,
    };
    let mut tok = Tokenizer::new(build::bpe_model(source, pieces, merges, opts)?);
    build::byte_level_pipeline(&mut tok, pt.pre);
    let add_bos = md
        .get_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(pt.add_bos);
    Ok((tok, add_bos))
}

fn llama(md: &Metadata, source: &str, pieces: &Pieces) -> Result<(Tokenizer, bool)> {
    let scores = md.get_f32_array("tokenizer.ggml.scores")?.ok_or_else(|| {
        tok_err(
            source,
            "a `llama` tokenizer needs tokenizer.ggml.scores (missing)",
        )
    })?;
    if scores.len() != pieces.tokens.len() {
        return Err(tok_err(
            source,
            format_args!(
                "tokenizer.ggml.scores has {} entries, tokenizer.ggml.tokens {}",
                scores.len(),
                pieces.tokens.len()
            ),
        ));
    }
    let unk_id = token_id(
        md,
        source,
        "tokenizer.ggml.unknown_token_id",
        pieces.tokens.len(),
        Some(0),
    )?;
    let opts = BpeOptions {
        unk: unk_id.map(|i| pieces.tokens[i as usize].as_str()),
        byte_fallback: true,
        ignore_merges: false,
    };
    let merges = merges_from_scores(pieces, scores);
    let mut tok = Tokenizer::new(build::bpe_model(source, pieces, merges, opts)?);
    let add_space_prefix = md
        .get_bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    build::spm_pipeline(&mut tok, add_space_prefix)?;
    let add_bos = md.get_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(true);
    Ok((tok, add_bos))
}

/// See [`TokenizerInfo::from_gguf`].
pub(crate) fn from_gguf(file: &GgufFile) -> Result<TokenizerInfo> {
    let md = file.metadata();
    let source = file.path().display().to_string();
    let source = source.as_str();
    let model = md.get_str("tokenizer.ggml.model")?.ok_or_else(|| {
        tok_err(
            source,
            "the GGUF file has no tokenizer (tokenizer.ggml.model is missing)",
        )
    })?;
    let tokens = md.require_str_array("tokenizer.ggml.tokens")?.to_vec();
    let n = tokens.len();
    let types = match md.get_int_array("tokenizer.ggml.token_type")? {
        Some(t) if t.len() == n => t,
        Some(t) => {
            return Err(tok_err(
                source,
                format_args!(
                    "tokenizer.ggml.token_type has {} entries, tokenizer.ggml.tokens {n}",
                    t.len()
                ),
            ))
        }
        None => vec![token_type::NORMAL; n],
    };
    let pieces = Pieces { tokens, types };
    let spm = model == "llama";
    let (mut tok, add_bos) = match model {
        "gpt2" => gpt2(md, source, &pieces)?,
        "llama" => llama(md, source, &pieces)?,
        other => {
            return Err(tok_err(
                source,
                format_args!("unsupported tokenizer.ggml.model `{other}` (supported: gpt2, llama)"),
            ))
        }
    };
    build::add_special_tokens(&mut tok, &pieces);
    let default = |id| spm.then_some(id);
    let bos_id = token_id(md, source, "tokenizer.ggml.bos_token_id", n, default(1))?;
    let eos_id = token_id(md, source, "tokenizer.ggml.eos_token_id", n, default(2))?;
    let processor = match bos_id {
        Some(id) if add_bos => build::bos_processor(&pieces.tokens[id as usize], id),
        _ if !spm => Some(PostProcessorWrapper::ByteLevel(ByteLevel::new(
            true, false, true,
        ))),
        _ => None,
    };
    tok.with_post_processor(processor);
    let chat_template = md.get_str("tokenizer.chat_template")?.map(str::to_string);
    Ok(TokenizerInfo::new(
        tok,
        bos_id,
        eos_id,
        add_bos,
        chat_template,
        source,
    ))
}
