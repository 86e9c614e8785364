//! A tiny random Llama as an HF checkpoint directory (word-level tokenizer over
//! `w3 .. w63`), for tests, examples and smoke runs of the trainer without a
//! downloaded model. Deterministic in `seed`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use sdft_core::rng::SplitMix64;
use serde_json::json;

use crate::{Error, ResponseColumn, Result, TrainConfig, TrainJob};

pub const HIDDEN: usize = 32;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = 8;
pub const FFN: usize = 48;
pub const VOCAB: usize = 64;
pub const LAYERS: usize = 2;

fn write(path: &Path, text: String) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes `config.json`, `tokenizer.json`, `tokenizer_config.json` and
/// `model.safetensors` of a 2-layer GQA model with weights ~ U(-0.5, 0.5)
/// (norms around 1) into `dir`.
pub fn write_tiny_model(dir: &Path, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "num_hidden_layers": LAYERS, "vocab_size": VOCAB,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 512,
        "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 1,
        "torch_dtype": "float32"
    });
    write(&dir.join("config.json"), config.to_string())?;
    let mut vocab: HashMap<String, usize> = HashMap::new();
    for (i, t) in ["<s>", "</s>", "<unk>"].iter().enumerate() {
        vocab.insert(t.to_string(), i);
    }
    for i in 3..VOCAB {
        vocab.insert(format!("w{i}"), i);
    }
    let special = |id: usize, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "<s>"), special(1, "</s>"), special(2, "<unk>")],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    write(&dir.join("tokenizer.json"), tokenizer.to_string())?;
    let tcfg = json!({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true});
    write(&dir.join("tokenizer_config.json"), tcfg.to_string())?;

    let mut rng = SplitMix64::new(seed);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add = |name: String, shape: Vec<usize>| {
        let n: usize = shape.iter().product();
        let offset = if name.contains("norm") { 1.0 } else { 0.0 };
        let bytes = (0..n)
            .flat_map(|_| ((rng.next_f64() - 0.5) as f32 + offset).to_le_bytes())
            .collect();
        tensors.push((name, shape, bytes));
    };
    add("model.embed_tokens.weight".into(), vec![VOCAB, HIDDEN]);
    for i in 0..LAYERS {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        add(p("input_layernorm.weight"), vec![HIDDEN]);
        add(p("self_attn.q_proj.weight"), vec![HEADS * HEAD_DIM, HIDDEN]);
        add(
            p("self_attn.k_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, HIDDEN],
        );
        add(
            p("self_attn.v_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, HIDDEN],
        );
        add(p("self_attn.o_proj.weight"), vec![HIDDEN, HEADS * HEAD_DIM]);
        add(p("post_attention_layernorm.weight"), vec![HIDDEN]);
        add(p("mlp.gate_proj.weight"), vec![FFN, HIDDEN]);
        add(p("mlp.up_proj.weight"), vec![FFN, HIDDEN]);
        add(p("mlp.down_proj.weight"), vec![HIDDEN, FFN]);
    }
    add("model.norm.weight".into(), vec![HIDDEN]);
    add("lm_head.weight".into(), vec![VOCAB, HIDDEN]);
    let views = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("valid view"),
            )
        })
        .collect::<Vec<_>>();
    let path = dir.join("model.safetensors");
    safetensors::serialize_to_file(views, None, &path).map_err(|e| Error::Data {
        path: path.clone(),
        message: e.to_string(),
    })
}

/// A JSON dataset of `n` instruction/output rows in the fixture's vocabulary.
pub fn write_tiny_dataset(path: &Path, n: usize, seed: u64) -> Result<()> {
    let mut rng = SplitMix64::new(seed);
    let mut words = |k: usize| -> String {
        (0..k)
            .map(|_| format!("w{}", 3 + rng.below(VOCAB - 3)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rows: Vec<serde_json::Value> = (0..n)
        .map(|_| json!({"instruction": words(6), "output": words(5)}))
        .collect();
    write(path, serde_json::to_string(&rows).expect("json"))
}

/// A training job on the fixture files under `root` (`root/model` from
/// [`write_tiny_model`], `root/data.json` from [`write_tiny_dataset`]), with the
/// `alpaca` template, writing to `root/out`.
pub fn tiny_job(root: &Path, out: &str, config: TrainConfig, resume: bool) -> TrainJob {
    TrainJob {
        model: root.join("model"),
        data: root.join("data.json"),
        template: sdft_data::Template::preset("alpaca").expect("the alpaca preset exists"),
        response_column: ResponseColumn::Output,
        output: root.join(out),
        config,
        resume,
        overwrite: false,
    }
}

/// The largest absolute difference between two sets of logits (`[sequence]
/// [position][vocab]`, as `Model::logits_all` returns them).
pub fn max_logit_diff(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> f32 {
    assert_eq!(a.len(), b.len(), "sequence counts");
    a.iter()
        .flatten()
        .flatten()
        .zip(b.iter().flatten().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}
