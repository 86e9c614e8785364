//! The Rust model's logits against golden logits from an independent NumPy
//! reference (`scripts/reference/smollm2_reference.py`, see its README for the
//! command), on SmolLM2-135M-Instruct (GGUF, Q4_1): every position of several
//! prompts, alone and as one padded batch; and the GGUF and converted-safetensors
//! paths agree.

use std::path::PathBuf;

use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::{LoadOptions, Model};
use serde_json::Value;

/// Largest absolute logit difference accepted against the f32 NumPy reference.
const TOLERANCE: f32 = 2e-3;

fn model_path() -> Option<PathBuf> {
    sdft_model::assets::cached_model(&sdft_model::assets::SMOLLM2_135M_INSTRUCT)
}

fn golden() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/smollm2_logits.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn logsumexp(row: &[f32]) -> f32 {
    let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    m + row.iter().map(|x| ((x - m) as f64).exp()).sum::<f64>().ln() as f32
}

/// Compares one prompt's logits with the golden entry; returns the max abs error.
fn compare(name: &str, g: &Value, fixed_ids: &[u32], logits: &[Vec<f32>]) -> f32 {
    let n = g["n_tokens"].as_u64().unwrap() as usize;
    assert_eq!(logits.len(), n, "{name}");
    let mut max_err = 0f32;
    for t in 0..n {
        let row = &logits[t];
        let top_ids = ids(&g["top_ids"][t]);
        let top_logits = floats(&g["top_logits"][t]);
        let argmax = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32;
        assert_eq!(argmax, top_ids[0], "{name}: top-1 token at position {t}");
        for (id, want) in top_ids.iter().zip(&top_logits) {
            max_err = max_err.max((row[*id as usize] - want).abs());
        }
        for (id, want) in fixed_ids.iter().zip(floats(&g["fixed_logits"][t])) {
            max_err = max_err.max((row[*id as usize] - want).abs());
        }
        let lse = g["logsumexp"][t].as_f64().unwrap() as f32;
        max_err = max_err.max((logsumexp(row) - lse).abs());
    }
    max_err
}

#[test]
fn gguf_logits_match_the_numpy_reference() {
    let Some(path) = model_path() else { return };
    let device = default_device();
    let model = Model::<DefaultBackend>::load(&path, &LoadOptions::default(), &device).unwrap();
    let golden = golden();
    let fixed_ids = ids(&golden["fixed_token_ids"]);
    let prompts = golden["prompts"].as_array().unwrap();
    let mut seqs = Vec::new();
    for g in prompts {
        let name = g["name"].as_str().unwrap();
        let want = ids(&g["token_ids"]);
        let got = model
            .tokenizer
            .encode(g["text"].as_str().unwrap(), true)
            .unwrap();
        assert_eq!(got, want, "{name}: token ids");
        seqs.push(want);
    }
    // Each prompt alone.
    let mut worst = 0f32;
    for (g, seq) in prompts.iter().zip(&seqs) {
        let logits = model.logits_all(std::slice::from_ref(seq)).unwrap();
        let err = compare(g["name"].as_str().unwrap(), g, &fixed_ids, &logits[0]);
        eprintln!(
            "{}: {} tokens, max |logit - reference| = {err:.2e}",
            g["name"],
            seq.len()
        );
        worst = worst.max(err);
    }
    // All prompts as one right-padded batch.
    let batch = model.logits_all(&seqs).unwrap();
    for ((g, _), logits) in prompts.iter().zip(&seqs).zip(&batch) {
        let err = compare(g["name"].as_str().unwrap(), g, &fixed_ids, logits);
        worst = worst.max(err);
    }
    eprintln!(
        "worst max abs error over all prompts and positions (single and batched): {worst:.2e}"
    );
    assert!(
        worst < TOLERANCE,
        "max abs error {worst} exceeds {TOLERANCE}"
    );
}

#[test]
fn converted_safetensors_give_identical_logits() {
    let Some(path) = model_path() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("smollm2-hf");
    let files = sdft_model::ModelFiles::open(&path).unwrap();
    sdft_model::convert::write_hf_dir(&files, &out, sdft_model::convert::SaveDtype::F32).unwrap();
    drop(files);
    let device = default_device();
    let a = Model::<DefaultBackend>::load(&path, &LoadOptions::default(), &device).unwrap();
    let b = Model::<DefaultBackend>::load(&out, &LoadOptions::default(), &device).unwrap();
    assert_eq!(a.config, b.config);
    let text = "<|im_start|>user\nName three colors.<|im_end|>\n<|im_start|>assistant\n";
    let ids_a = a.tokenizer.encode_prompt(text).unwrap();
    let ids_b = b.tokenizer.encode_prompt(text).unwrap();
    assert_eq!(
        ids_a, ids_b,
        "the converted tokenizer.json tokenizes the same"
    );
    let la = a.logits_all(std::slice::from_ref(&ids_a)).unwrap();
    let lb = b.logits_all(std::slice::from_ref(&ids_b)).unwrap();
    let max = la[0]
        .iter()
        .flatten()
        .zip(lb[0].iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert_eq!(
        max, 0.0,
        "GGUF and converted safetensors logits differ by {max}"
    );
}
