//! Tokenizers: tiny vocabularies built here in GGUF files, SmolLM2's GGUF tokenizer
//! against `tests/golden/tokenize_cases.json`, the Llama-2 tokenizer of
//! `llama-tokenizer-js` against llama.cpp's `ggml-vocab-llama-spm.gguf.inp/.out`
//! reference tokenizations, and the HF `tokenizer.json` round trip.

use std::path::{Path, PathBuf};

use sdft_model::gguf::GgufFile;
use sdft_model::tokenizer::{llama2_tokenizer_from_js, TokenizerInfo};
use serde_json::Value;

/// `$SDFT_HOME/<rel>`, or `None` after a note saying how to get it.
fn asset(rel: &str) -> Option<PathBuf> {
    sdft_model::assets::cached(rel)
}

// ---------------------------------------------------------------- tiny GGUF vocabularies

fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

enum V<'a> {
    Str(&'a str),
    U32(u32),
    Bool(bool),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

/// A tensor-less GGUF file holding `kvs`.
fn gguf_with(dir: &Path, kvs: &[(&str, V<'_>)]) -> GgufFile {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend((kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        gstr(&mut b, k);
        let array_head = |b: &mut Vec<u8>, t: u32, n: usize| {
            b.extend(9u32.to_le_bytes());
            b.extend(t.to_le_bytes());
            b.extend((n as u64).to_le_bytes());
        };
        match v {
            V::Str(s) => {
                b.extend(8u32.to_le_bytes());
                gstr(&mut b, s);
            }
            V::U32(x) => {
                b.extend(4u32.to_le_bytes());
                b.extend(x.to_le_bytes());
            }
            V::Bool(x) => {
                b.extend(7u32.to_le_bytes());
                b.push(*x as u8);
            }
            V::Strs(xs) => {
                array_head(&mut b, 8, xs.len());
                xs.iter().for_each(|s| gstr(&mut b, s));
            }
            V::F32s(xs) => {
                array_head(&mut b, 6, xs.len());
                xs.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
            V::I32s(xs) => {
                array_head(&mut b, 5, xs.len());
                xs.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
        }
    }
    let p = dir.join("vocab.gguf");
    std::fs::write(&p, b).unwrap();
    GgufFile::open(p).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn tiny_spm_vocab_from_gguf() {
    // <unk> <s> </s>, the 256 byte tokens, then pieces whose scores give merges.
    let mut tokens = strings(&["<unk>", "<s>", "</s>"]);
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for p in ["▁", "a", "b", "c", "▁a", "ab", "▁ab", "<|user|>"] {
        tokens.push(p.into());
        types.push(if p == "<|user|>" { 4 } else { 1 });
    }
    let scores: Vec<f32> = (0..tokens.len()).map(|i| -(i as f32)).collect();
    let id = |s: &str| tokens.iter().position(|t| t == s).unwrap() as u32;
    let dir = tempfile::tempdir().unwrap();
    let f = gguf_with(
        dir.path(),
        &[
            ("tokenizer.ggml.model", V::Str("llama")),
            ("tokenizer.ggml.tokens", V::Strs(tokens.clone())),
            ("tokenizer.ggml.scores", V::F32s(scores)),
            ("tokenizer.ggml.token_type", V::I32s(types)),
            ("tokenizer.chat_template", V::Str("{{ x }}")),
        ],
    );
    let tok = TokenizerInfo::from_gguf(&f).unwrap();
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.add_bos()),
        (Some(1), Some(2), true)
    );
    assert_eq!(tok.chat_template(), Some("{{ x }}"));
    // "ab" -> ▁ab; " c" -> ▁ c; "é" -> byte fallback 0xC3 0xA9.
    let ids = tok.encode("ab c é", true).unwrap();
    let want = vec![
        id("▁ab"),
        id("▁"),
        id("c"),
        id("▁"),
        id("<0xC3>"),
        id("<0xA9>"),
    ];
    assert_eq!(ids, want);
    assert_eq!(tok.decode(&ids, false).unwrap(), "ab c é");
    // Control tokens only with parse_special; user-defined tokens always.
    assert_eq!(tok.encode("<s>", true).unwrap(), [1]);
    assert_ne!(tok.encode("<s>", false).unwrap(), [1]);
    assert!(tok
        .encode("a<|user|>", false)
        .unwrap()
        .contains(&id("<|user|>")));
    assert_eq!(tok.encode_prompt("a").unwrap(), [1, id("▁a")]);
    assert_eq!(tok.encode("", true).unwrap(), Vec::<u32>::new());
    assert_eq!(tok.decode(&[1, id("▁a"), 2], true).unwrap(), "a");
    assert!(tok.decode(&[9999], false).is_err());
}

#[test]
fn tiny_gpt2_vocab_from_gguf() {
    // Byte-level spelling: "Ġ" is a space.
    let tokens = strings(&["<|endoftext|>", "h", "i", "Ġ", "1", "2", "hi", "Ġhi", "12"]);
    let dir = tempfile::tempdir().unwrap();
    let kvs = |pre: &'static str| {
        vec![
            ("tokenizer.ggml.model", V::Str("gpt2")),
            ("tokenizer.ggml.pre", V::Str(pre)),
            ("tokenizer.ggml.tokens", V::Strs(tokens.clone())),
            (
                "tokenizer.ggml.merges",
                V::Strs(strings(&["h i", "Ġ hi", "1 2"])),
            ),
            (
                "tokenizer.ggml.token_type",
                V::I32s(vec![3, 1, 1, 1, 1, 1, 1, 1, 1]),
            ),
            ("tokenizer.ggml.eos_token_id", V::U32(0)),
            ("tokenizer.ggml.add_bos_token", V::Bool(false)),
        ]
    };
    let tok = TokenizerInfo::from_gguf(&gguf_with(dir.path(), &kvs("gpt2"))).unwrap();
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.add_bos()),
        (None, Some(0), false)
    );
    assert_eq!(
        tok.encode("hi hi12<|endoftext|>", true).unwrap(),
        [6, 7, 8, 0]
    );
    assert_eq!(
        tok.decode(&[6, 7, 8, 0], false).unwrap(),
        "hi hi12<|endoftext|>"
    );
    assert_eq!(tok.decode(&[6, 7, 8, 0], true).unwrap(), "hi hi12");
    // smollm splits digits individually.
    let tok = TokenizerInfo::from_gguf(&gguf_with(dir.path(), &kvs("smollm"))).unwrap();
    assert_eq!(tok.encode("hi hi12", true).unwrap(), [6, 7, 4, 5]);
    // Llama-3 keeps up to 3 digits together; Qwen2 splits them.
    for (pre, want) in [("llama-bpe", vec![6, 7, 8]), ("qwen2", vec![6, 7, 4, 5])] {
        let tok = TokenizerInfo::from_gguf(&gguf_with(dir.path(), &kvs(pre))).unwrap();
        assert_eq!(tok.encode("hi hi12", true).unwrap(), want, "{pre}");
    }
    // Unknown pre-tokenizers are named.
    let e = TokenizerInfo::from_gguf(&gguf_with(dir.path(), &kvs("klingon")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("klingon") && e.contains("vocab.gguf"), "{e}");
}

#[test]
fn missing_tokenizer_metadata_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = gguf_with(dir.path(), &[("general.name", V::Str("x"))]);
    let e = TokenizerInfo::from_gguf(&f).unwrap_err().to_string();
    assert!(e.contains("tokenizer.ggml.model"), "{e}");
    let f = gguf_with(
        dir.path(),
        &[
            ("tokenizer.ggml.model", V::Str("llama")),
            (
                "tokenizer.ggml.tokens",
                V::Strs(strings(&["<unk>", "<s>", "</s>"])),
            ),
        ],
    );
    let e = TokenizerInfo::from_gguf(&f).unwrap_err().to_string();
    assert!(e.contains("tokenizer.ggml.scores"), "{e}");
}

// ---------------------------------------------------------------- SmolLM2

fn golden_cases() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tokenize_cases.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Checks every golden case; returns the number checked.
fn check_smollm2_cases(tok: &TokenizerInfo, golden: &Value) -> usize {
    let cases = golden["cases"].as_array().unwrap();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let parse_special = c["parse_special"].as_bool().unwrap();
        let want: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = tok.encode(text, parse_special).unwrap();
        assert_eq!(ids, want, "{text:?} (parse_special {parse_special})");
        let pieces: Vec<String> = ids.iter().map(|&i| tok.id_to_token(i).unwrap()).collect();
        let want_pieces: Vec<&str> = c["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(pieces, want_pieces, "{text:?}");
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "decode of {text:?}");
    }
    cases.len()
}

#[test]
fn smollm2_gguf_tokenizer_matches_golden() {
    let Some(path) = asset("models/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let tok = TokenizerInfo::from_gguf(&GgufFile::open(path).unwrap()).unwrap();
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.add_bos()),
        (Some(1), Some(2), false)
    );
    assert_eq!(tok.vocab_size(), 49152);
    assert!(tok
        .chat_template()
        .unwrap()
        .starts_with("{% for message in messages %}"));
    let golden = golden_cases();
    assert_eq!(golden["tokenizer"]["ggml_pre"], "smollm");
    let n = check_smollm2_cases(&tok, &golden);
    assert!(n >= 30, "only {n} cases");
    assert_eq!(
        tok.decode(&[1, 9690, 2], true).unwrap(),
        tok.decode(&[9690], false).unwrap()
    );

    // The HF files written for a converted model give the same tokenizer.
    let dir = tempfile::tempdir().unwrap();
    tok.write_hf_files(dir.path()).unwrap();
    let hf = TokenizerInfo::from_hf_dir(dir.path()).unwrap();
    assert_eq!(
        (hf.bos_id(), hf.eos_id(), hf.add_bos()),
        (Some(1), Some(2), false)
    );
    assert_eq!(hf.chat_template(), tok.chat_template());
    check_smollm2_cases(&hf, &golden);
}

// ---------------------------------------------------------------- Llama-2 (SentencePiece)

/// llama.cpp's reference tokenizations: inputs separated by
/// `\n__ggml_vocab_test__\n` (as test-tokenizer-0.cpp splits them), one line of
/// ids per input (no BOS; llama.cpp adds the leading space itself).
fn llama_spm_cases() -> Option<Vec<(String, Vec<u32>)>> {
    let inp = asset("assets/llama-spm/ggml-vocab-llama-spm.gguf.inp")?;
    let out = asset("assets/llama-spm/ggml-vocab-llama-spm.gguf.out")?;
    let inp = std::fs::read_to_string(inp).unwrap();
    let out = std::fs::read_to_string(out).unwrap();
    let mut texts: Vec<String> = inp
        .split("\n__ggml_vocab_test__\n")
        .map(str::to_string)
        .collect();
    if texts.last().is_some_and(|t| t.is_empty()) {
        texts.pop();
    }
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(texts.len(), ids.len(), "inputs and outputs differ in count");
    Some(texts.into_iter().zip(ids).collect())
}

/// Returns the cases whose tokenization differs.
fn mismatches(tok: &TokenizerInfo, cases: &[(String, Vec<u32>)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (text, want) in cases {
        let got = tok.encode(text, false).unwrap();
        if &got != want {
            bad.push(format!("{text:?}: got {got:?}, want {want:?}"));
        }
    }
    bad
}

fn llama2_js() -> Option<TokenizerInfo> {
    let js = asset("assets/llama-tokenizer-js/llama-tokenizer.js")?;
    Some(llama2_tokenizer_from_js(&std::fs::read_to_string(js).unwrap()).unwrap())
}

#[test]
fn llama2_js_tokenizer_matches_llama_cpp() {
    let Some(tok) = llama2_js() else { return };
    let Some(cases) = llama_spm_cases() else {
        return;
    };
    assert_eq!(tok.vocab_size(), 32000);
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.add_bos()),
        (Some(1), Some(2), true)
    );
    let bad = mismatches(&tok, &cases);
    println!(
        "llama-spm reference: {}/{} cases match",
        cases.len() - bad.len(),
        cases.len()
    );
    assert!(
        bad.is_empty(),
        "{} of {} cases differ:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
    assert_eq!(cases.len(), 46);

    assert_eq!(tok.encode_prompt("Hello world").unwrap(), [1, 15043, 3186]);
    assert_eq!(tok.encode("<s>Hi</s>", true).unwrap()[0], 1);
    for (text, ids) in &cases {
        assert_eq!(&tok.decode(ids, false).unwrap(), text, "decode of {text:?}");
    }
}

#[test]
fn llama_spm_gguf_vocab_matches_llama_cpp() {
    let Some(path) = asset("assets/llama-spm/ggml-vocab-llama-spm.gguf") else {
        return;
    };
    let Some(cases) = llama_spm_cases() else {
        return;
    };
    let tok = TokenizerInfo::from_gguf(&GgufFile::open(path).unwrap()).unwrap();
    let bad = mismatches(&tok, &cases);
    assert!(
        bad.is_empty(),
        "{} of {} cases differ:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
    // Merges derived from the scores equal HF's (from the JS package).
    if let Some(js) = llama2_js() {
        let merges = |t: &TokenizerInfo| -> Value {
            let v: Value = serde_json::from_str(&t.to_tokenizer_json().unwrap()).unwrap();
            v["model"]["merges"].clone()
        };
        let (ours, hf) = (merges(&tok), merges(&js));
        let (ours, hf) = (ours.as_array().unwrap(), hf.as_array().unwrap());
        let first_diff = ours.iter().zip(hf).position(|(a, b)| a != b);
        assert_eq!(
            (ours.len(), first_diff),
            (hf.len(), None),
            "merges derived from scores differ"
        );
    }
}

#[test]
fn llama2_hf_round_trip() {
    let Some(tok) = llama2_js() else { return };
    let dir = tempfile::tempdir().unwrap();
    tok.write_hf_files(dir.path()).unwrap();
    let hf = TokenizerInfo::from_hf_dir(dir.path()).unwrap();
    assert_eq!(
        (hf.bos_id(), hf.eos_id(), hf.add_bos()),
        (Some(1), Some(2), true)
    );
    let text = "Hello world, naïve 🤗 \n\tcode";
    assert_eq!(
        hf.encode(text, true).unwrap(),
        tok.encode(text, true).unwrap()
    );
    // HF's own post-processor adds BOS, as transformers would.
    let enc = hf.tokenizer().encode("Hello", true).unwrap();
    assert_eq!(enc.get_ids()[0], 1);
}
