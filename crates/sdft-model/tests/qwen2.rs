//! Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M: Q5_0, Q8_0, Q6_K, Q4_K and F32
//! tensors) against goldens from the independent NumPy + gguf-py reference
//! (`scripts/reference/qwen2_reference.py`): the dequantized values of real
//! tensors bit for bit, the tokenizer's ids, the logits at every position of four
//! prompts (one padded batch), the model's ChatML template, and greedy generation
//! through the engine. Runs where `cargo xtask assets --qwen2` has cached the model.

use std::path::PathBuf;

use sdft_core::{GenerationRequest, SamplingParams};
use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::gguf::{dequantize, GgufFile};
use sdft_model::{Engine, LoadOptions, Model, TokenizerInfo};
use serde_json::Value;

/// Largest absolute logit (and logsumexp) difference accepted against the
/// float64 reference: the kernels sum in f32 in another order over 24 layers.
const TOLERANCE: f32 = 2e-2;

fn model_path() -> Option<PathBuf> {
    sdft_model::assets::cached_model(&sdft_model::assets::QWEN2_5_CODER_0_5B_INSTRUCT)
}

fn golden(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn real_tensors_dequantize_bit_exactly() {
    let Some(path) = model_path() else { return };
    let file = GgufFile::open(&path).unwrap();
    let g = golden("qwen2_dequant.json");
    let mut types = Vec::new();
    for case in g["real_tensors"].as_array().unwrap() {
        let name = case["tensor"].as_str().unwrap();
        let info = file.tensor_info(name).unwrap();
        assert_eq!(
            info.dtype().name(),
            case["type"].as_str().unwrap(),
            "{name}"
        );
        let raw = hex(case["raw_hex"].as_str().unwrap());
        // The bytes are the file's: at the row's offset in the tensor's data.
        let (row, row_len) = (
            case["row"].as_u64().unwrap() as usize,
            case["row_len"].as_u64().unwrap() as usize,
        );
        let (bs, ts) = info.dtype().block_geometry();
        let start = row * row_len / bs * ts;
        let bytes = file.tensor_bytes(name).unwrap();
        assert_eq!(
            &bytes[start..start + raw.len()],
            &raw[..],
            "{name} row {row}"
        );
        let mut out = vec![0f32; case["n_values"].as_u64().unwrap() as usize];
        dequantize(info.dtype(), &raw, &mut out).unwrap();
        let want: Vec<u32> = case["values_f32_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| u32::from_str_radix(s.as_str().unwrap(), 16).unwrap())
            .collect();
        let got: Vec<u32> = out.iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want, "{name} row {row}");
        types.push(info.dtype().name());
    }
    for t in ["Q5_0", "Q8_0", "Q6_K", "Q4_K", "F32"] {
        assert!(types.contains(&t), "a {t} tensor is checked");
    }
}

#[test]
fn tokenizer_matches_the_reference() {
    let Some(path) = model_path() else { return };
    let tok = TokenizerInfo::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(tok.vocab_size(), 151_936);
    assert_eq!(tok.special_token_id("<|im_start|>"), Some(151_644));
    assert_eq!(tok.eos_id(), Some(151_645));
    assert_eq!(tok.special_token_id("<|endoftext|>"), Some(151_643));
    assert!(!tok.add_bos());
    let g = golden("qwen2_tokenize.json");
    for case in g["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, true).unwrap(),
            ids(&case["ids"]),
            "{text:?}"
        );
        assert_eq!(tok.decode(&ids(&case["ids"]), false).unwrap(), text);
    }
}

fn logsumexp(row: &[f32]) -> f32 {
    let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    m + row.iter().map(|x| ((x - m) as f64).exp()).sum::<f64>().ln() as f32
}

#[test]
fn logits_chat_template_and_greedy_match_the_reference() {
    let Some(path) = model_path() else { return };
    let device = default_device();
    let model = Model::<DefaultBackend>::load(&path, &LoadOptions::default(), &device).unwrap();
    let g = golden("qwen2_logits.json");
    let prompts = g["prompts"].as_array().unwrap();
    let seqs: Vec<Vec<u32>> = prompts.iter().map(|p| ids(&p["token_ids"])).collect();
    for (p, s) in prompts.iter().zip(&seqs) {
        let text = p["text"].as_str().unwrap();
        assert_eq!(&model.tokenizer.encode(text, true).unwrap(), s, "{text:?}");
    }
    let logits = model.logits_all(&seqs).unwrap();
    let mut max_err = 0f32;
    for (p, rows) in prompts.iter().zip(&logits) {
        let name = p["name"].as_str().unwrap();
        for (t, row) in rows.iter().enumerate() {
            let top = ids(&p["top_ids"][t]);
            let argmax = (0..row.len())
                .max_by(|a, b| row[*a].total_cmp(&row[*b]))
                .unwrap();
            assert_eq!(argmax as u32, top[0], "{name}: top-1 at position {t}");
            for (id, want) in top.iter().zip(p["top_logits"][t].as_array().unwrap()) {
                max_err = max_err.max((row[*id as usize] - want.as_f64().unwrap() as f32).abs());
            }
            let lse = p["logsumexp"][t].as_f64().unwrap() as f32;
            max_err = max_err.max((logsumexp(row) - lse).abs());
        }
    }
    eprintln!("qwen2 logits: max |Δ| {max_err:.2e} against the NumPy reference");
    assert!(max_err <= TOLERANCE, "max |Δ| {max_err}");

    // The GGUF's ChatML template renders the reference's prompt.
    let greedy = &g["greedy"];
    let prompt = greedy["prompt"].as_str().unwrap();
    let template = sdft_data::ChatTemplate::new(model.tokenizer.chat_template().unwrap()).unwrap();
    let messages = [(
        "user".to_string(),
        "What is the capital of France?".to_string(),
    )];
    assert_eq!(
        template.render(&messages, true, "", "<|im_end|>").unwrap(),
        prompt
    );

    let engine = Engine::new(model, 2);
    let params = SamplingParams::greedy().with_max_new_tokens(24);
    let req = GenerationRequest::text("capital", prompt);
    let out = engine
        .generate_with(std::slice::from_ref(&req), &params, &mut |_, _| {})
        .unwrap();
    assert_eq!(out[0].text, "The capital of France is Paris.");
    assert_eq!(out[0].text, greedy["text"].as_str().unwrap());
    assert_eq!(out[0].tokens, ids(&greedy["generated_ids"]).len());
}
