//! A tiny random Qwen2 (q/k/v biases, grouped-query attention, untied head;
//! `sdft_model::fixture`) written as an HF directory (`Qwen2ForCausalLM`) and, by
//! the test, as a GGUF (`general.architecture = qwen2`): both give the logits of a plain f64 forward
//! written here from the architecture's definition, and the same logits as each
//! other; the CPU decode kernel agrees; `write_hf_dir` writes a Qwen2 directory
//! that reads back to identical logits; a LoRA adapter on the biased q/v
//! projections adds its update to `x·Wᵀ + b`, saves in PEFT's layout under
//! Qwen2's module names and loads back.

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use sdft_core::rng::SplitMix64;
use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::convert::{write_hf_dir, SaveDtype};
use sdft_model::fixture::{
    Tensors, TinyModel, FFN as FF, HEADS, HEAD_DIM as HD, HIDDEN as H, KV_HEADS as KV, LAYERS,
    VOCAB as V,
};
use sdft_model::model::lora::{self, peft, LoraConfig};
use sdft_model::{Architecture, LoadOptions, Model, ModelFiles};
use serde_json::json;

const TINY: TinyModel = TinyModel::qwen2(7);
const EPS: f64 = TINY.rms_norm_eps();
const THETA: f64 = TINY.rope_theta();

/// HF names, PyTorch shapes, values ~ U(-0.5, 0.5) (norms around 1).
fn tensors() -> Tensors {
    TINY.tensors()
}

fn write_hf(dir: &Path) {
    TINY.write(dir).unwrap();
}

fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// The llama.cpp name of an HF name (Qwen2: no q/k row permutation).
fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, name) = rest.split_once('.').unwrap();
    let short = match name {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        other => {
            let (proj, kind) = other
                .strip_prefix("self_attn.")
                .unwrap()
                .split_once("_proj.")
                .unwrap();
            return format!("blk.{layer}.attn_{proj}.{kind}");
        }
    };
    format!("blk.{layer}.{short}")
}

/// A GGUF v3 file: qwen2 metadata, a gpt2 vocabulary of `V` one-character tokens,
/// the tensors in F32.
fn write_gguf(path: &Path, items: &Tensors) {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend((items.len() as u64).to_le_bytes());
    let tokens: Vec<String> = (0..V)
        .map(|i| char::from(b'!' + i as u8).to_string())
        .collect();
    let u32s = [
        ("qwen2.block_count", LAYERS),
        ("qwen2.context_length", 64),
        ("qwen2.embedding_length", H),
        ("qwen2.feed_forward_length", FF),
        ("qwen2.attention.head_count", HEADS),
        ("qwen2.attention.head_count_kv", KV),
        ("tokenizer.ggml.eos_token_id", 1),
    ];
    b.extend((u32s.len() as u64 + 7).to_le_bytes());
    let string_kv = |b: &mut Vec<u8>, k: &str, v: &str| {
        gstr(b, k);
        b.extend(8u32.to_le_bytes());
        gstr(b, v);
    };
    string_kv(&mut b, "general.architecture", "qwen2");
    string_kv(&mut b, "tokenizer.ggml.model", "gpt2");
    string_kv(&mut b, "tokenizer.ggml.pre", "qwen2");
    for (k, v) in u32s {
        gstr(&mut b, k);
        b.extend(4u32.to_le_bytes());
        b.extend((v as u32).to_le_bytes());
    }
    for (k, v) in [
        ("qwen2.rope.freq_base", THETA as f32),
        ("qwen2.attention.layer_norm_rms_epsilon", EPS as f32),
    ] {
        gstr(&mut b, k);
        b.extend(6u32.to_le_bytes());
        b.extend(v.to_le_bytes());
    }
    let array_head = |b: &mut Vec<u8>, k: &str, t: u32, n: usize| {
        gstr(b, k);
        b.extend(9u32.to_le_bytes());
        b.extend(t.to_le_bytes());
        b.extend((n as u64).to_le_bytes());
    };
    array_head(&mut b, "tokenizer.ggml.tokens", 8, V);
    tokens.iter().for_each(|s| gstr(&mut b, s));
    array_head(&mut b, "tokenizer.ggml.merges", 8, 0);
    let mut offset = 0u64;
    for (name, shape, _) in items {
        gstr(&mut b, &gguf_name(name));
        b.extend((shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            b.extend((*d as u64).to_le_bytes());
        }
        b.extend(0u32.to_le_bytes());
        b.extend(offset.to_le_bytes());
        offset += (shape.iter().product::<usize>() * 4).next_multiple_of(32) as u64;
    }
    b.resize(b.len().next_multiple_of(32), 0);
    for (_, _, v) in items {
        let start = b.len();
        b.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        b.resize(start + (v.len() * 4).next_multiple_of(32), 0);
    }
    std::fs::write(path, b).unwrap();
}

/// Qwen2's forward from its definition, in f64: `x·Wᵀ + b` for q/k/v,
/// rotate-half RoPE, grouped-query causal attention, SwiGLU, untied head.
fn reference(items: &Tensors, ids: &[u32]) -> Vec<Vec<f64>> {
    let w: HashMap<&str, &Vec<f32>> = items.iter().map(|(n, _, v)| (n.as_str(), v)).collect();
    let get = |n: &str| w[n].iter().map(|x| *x as f64).collect::<Vec<f64>>();
    let lin = |x: &[f64], w: &[f64], bias: Option<&[f64]>, out: usize| -> Vec<f64> {
        let d_in = w.len() / out;
        (0..out)
            .map(|o| {
                let s: f64 = (0..d_in).map(|i| x[i] * w[o * d_in + i]).sum();
                s + bias.map_or(0.0, |b| b[o])
            })
            .collect()
    };
    let norm = |x: &[f64], w: &[f64]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        x.iter()
            .zip(w)
            .map(|(v, g)| v / (ms + EPS).sqrt() * g)
            .collect()
    };
    let rope = |v: &mut [f64], pos: usize| {
        for head in v.chunks_exact_mut(HD) {
            for i in 0..HD / 2 {
                let ang = pos as f64 * THETA.powf(-((2 * i) as f64) / HD as f64);
                let (a, b) = (head[i], head[i + HD / 2]);
                head[i] = a * ang.cos() - b * ang.sin();
                head[i + HD / 2] = b * ang.cos() + a * ang.sin();
            }
        }
    };
    let embed = get("model.embed_tokens.weight");
    let mut xs: Vec<Vec<f64>> = ids
        .iter()
        .map(|&t| embed[t as usize * H..(t as usize + 1) * H].to_vec())
        .collect();
    for l in 0..LAYERS {
        let p = |s: &str| get(&format!("model.layers.{l}.{s}"));
        let (qw, qb, kw, kb, vw, vb) = (
            p("self_attn.q_proj.weight"),
            p("self_attn.q_proj.bias"),
            p("self_attn.k_proj.weight"),
            p("self_attn.k_proj.bias"),
            p("self_attn.v_proj.weight"),
            p("self_attn.v_proj.bias"),
        );
        let mut qs = Vec::new();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for (pos, x) in xs.iter().enumerate() {
            let h = norm(x, &p("input_layernorm.weight"));
            let mut q = lin(&h, &qw, Some(&qb), HEADS * HD);
            let mut k = lin(&h, &kw, Some(&kb), KV * HD);
            rope(&mut q, pos);
            rope(&mut k, pos);
            qs.push(q);
            ks.push(k);
            vs.push(lin(&h, &vw, Some(&vb), KV * HD));
        }
        for t in 0..xs.len() {
            let mut attn = vec![0f64; HEADS * HD];
            for hh in 0..HEADS {
                let g = hh / (HEADS / KV);
                let q = &qs[t][hh * HD..(hh + 1) * HD];
                let scores: Vec<f64> = (0..=t)
                    .map(|s| {
                        let k = &ks[s][g * HD..(g + 1) * HD];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (HD as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (s, es) in e.iter().enumerate() {
                    for d in 0..HD {
                        attn[hh * HD + d] += es / z * vs[s][g * HD + d];
                    }
                }
            }
            let o = lin(&attn, &p("self_attn.o_proj.weight"), None, H);
            xs[t].iter_mut().zip(o).for_each(|(x, y)| *x += y);
            let h = norm(&xs[t], &p("post_attention_layernorm.weight"));
            let gate = lin(&h, &p("mlp.gate_proj.weight"), None, FF);
            let up = lin(&h, &p("mlp.up_proj.weight"), None, FF);
            let act: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = lin(&act, &p("mlp.down_proj.weight"), None, H);
            xs[t].iter_mut().zip(down).for_each(|(x, y)| *x += y);
        }
    }
    let head = get("lm_head.weight");
    xs.iter()
        .map(|x| lin(&norm(x, &get("model.norm.weight")), &head, None, V))
        .collect()
}

fn load(path: &Path) -> Model<DefaultBackend> {
    Model::load(path, &LoadOptions::default(), &default_device()).unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const SEQ: [u32; 9] = [3, 17, 5, 39, 22, 8, 8, 30, 11];

#[test]
fn hf_dir_and_gguf_match_the_definition_and_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let items = tensors();
    write_hf(&tmp.path().join("hf"));
    write_gguf(&tmp.path().join("tiny.gguf"), &items);
    let hf = load(&tmp.path().join("hf"));
    let gguf = load(&tmp.path().join("tiny.gguf"));
    assert_eq!(hf.config.architecture, Architecture::Qwen2);
    assert_eq!(gguf.config.architecture, Architecture::Qwen2);
    assert!(!gguf.config.tie_word_embeddings && gguf.config.num_key_value_heads == KV);
    assert!(!gguf.tokenizer.add_bos());
    let want = reference(&items, &SEQ);
    for (what, m) in [("hf", &hf), ("gguf", &gguf)] {
        let got = &m.logits_all(&[SEQ.to_vec()]).unwrap()[0];
        for (t, (g, w)) in got.iter().zip(&want).enumerate() {
            for (a, b) in g.iter().zip(w) {
                assert!(
                    (*a as f64 - b).abs() < 1e-4,
                    "{what} position {t}: {a} vs {b}"
                );
            }
        }
    }
    let a = hf.logits_all(&[SEQ.to_vec()]).unwrap();
    let b = gguf.logits_all(&[SEQ.to_vec()]).unwrap();
    assert_eq!(max_diff(&a[0], &b[0]), 0.0, "same f32 weights, same logits");
}

#[cfg(feature = "flex")]
#[test]
fn cpu_decode_kernel_adds_the_biases() {
    use sdft_model::kernels::decode::sequence_logits;
    let tmp = tempfile::tempdir().unwrap();
    let items = tensors();
    write_gguf(&tmp.path().join("tiny.gguf"), &items);
    let m = load(&tmp.path().join("tiny.gguf"));
    let host =
        sdft_model::kernels::pack::host_model(&m.llama, &m.config, None).expect("flex f32 weights");
    let got = sequence_logits(&host, &SEQ);
    let want = m.logits_all(&[SEQ.to_vec()]).unwrap();
    assert!(
        max_diff(&got, &want[0]) < 1e-4,
        "{}",
        max_diff(&got, &want[0])
    );
}

#[test]
fn convert_writes_a_qwen2_dir_that_reads_back_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let items = tensors();
    let gguf_path = tmp.path().join("tiny.gguf");
    write_gguf(&gguf_path, &items);
    let out = tmp.path().join("converted");
    write_hf_dir(&ModelFiles::open(&gguf_path).unwrap(), &out, SaveDtype::F32).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"], json!(["Qwen2ForCausalLM"]));
    assert_eq!(config["model_type"], "qwen2");
    assert_eq!(config["use_sliding_window"], false);
    assert_eq!(config["tie_word_embeddings"], false);
    let st = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    for n in [
        "model.layers.1.self_attn.q_proj.bias",
        "model.layers.1.self_attn.k_proj.bias",
        "model.layers.1.self_attn.v_proj.bias",
        "lm_head.weight",
    ] {
        assert!(st.tensor(n).is_ok(), "{n} written");
    }
    let a = load(&gguf_path).logits_all(&[SEQ.to_vec()]).unwrap();
    let b = load(&out).logits_all(&[SEQ.to_vec()]).unwrap();
    assert_eq!(max_diff(&a[0], &b[0]), 0.0);
}

#[test]
fn lora_on_biased_projections_saves_and_loads_in_peft_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let items = tensors();
    let gguf_path = tmp.path().join("tiny.gguf");
    write_gguf(&gguf_path, &items);
    let device = default_device();
    let mut m = load(&gguf_path);
    let base = m.logits_all(&[SEQ.to_vec()]).unwrap();
    let config = LoraConfig {
        dropout: 0.0,
        ..LoraConfig::default()
    };
    lora::attach(&mut m.llama, &config, 5, &device).unwrap();
    // A trained adapter's B is not zero: fill it so the update shows.
    let mut rng = SplitMix64::new(9);
    for (_, l) in lora::adapters_mut(&mut m.llama) {
        let [r, d_out] = l.b.val().dims();
        let vals: Vec<f32> = (0..r * d_out)
            .map(|_| (rng.next_f64() - 0.5) as f32)
            .collect();
        l.b = burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(vals, [r, d_out]),
            &device,
        ));
    }
    let adapted = m.logits_all(&[SEQ.to_vec()]).unwrap();
    assert!(
        max_diff(&adapted[0], &base[0]) > 1e-3,
        "the adapter changes the logits"
    );
    let dir = tmp.path().join("adapter");
    let ac = peft::AdapterConfig::new(&config, Some("tiny-qwen2".into())).unwrap();
    peft::save(&m.llama, &ac, &dir).unwrap();
    let st = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    assert_eq!(
        names[0],
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    );
    assert_eq!(names.len(), LAYERS * 2 * 2);
    // Loaded unmerged, and merged into the weights (the bias is untouched).
    let mut fresh = load(&gguf_path);
    fresh.load_adapter(&dir, false).unwrap();
    let loaded = fresh.logits_all(&[SEQ.to_vec()]).unwrap();
    assert!(max_diff(&loaded[0], &adapted[0]) < 1e-5);
    lora::merge(&mut fresh.llama);
    let merged = fresh.logits_all(&[SEQ.to_vec()]).unwrap();
    assert!(max_diff(&merged[0], &adapted[0]) < 1e-4);
}
