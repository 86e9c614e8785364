//! `export_gguf`: a PEFT adapter written as llama.cpp's GGUF LoRA adapter, read
//! back with this crate's GGUF reader: the metadata llama.cpp's loader checks
//! (`general.type`, `adapter.type`, `adapter.lora.alpha`, the architecture),
//! the tensors named after the base weights with `.lora_a` `[r, in]` and
//! `.lora_b` `[out, r]`, Llama's q/k `lora_b` rows in llama.cpp's permuted
//! order (Qwen2's not), rsLoRA's scale folded into alpha, and f16 storage.

use std::path::Path;

use safetensors::Dtype;
use sdft_model::fixture::{write_safetensors, TinyModel};
use sdft_model::gguf::GgufFile;
use sdft_model::model::lora::peft::{self, target_dims};
use sdft_model::model::lora::to_gguf::{export_gguf, LoraDtype};
use sdft_model::model::lora::Target;
use sdft_model::weights::unpermute_rows;
use sdft_model::ModelFiles;

/// A PEFT adapter on q, k, v and down of every layer with values that tell
/// every row apart.
fn write_adapter(model: &Path, dir: &Path, rslora: bool) {
    let files = ModelFiles::open(model).unwrap();
    let c = &files.config;
    let r = 2;
    let mut tensors = Vec::new();
    for layer in 0..c.num_hidden_layers {
        for (t, group, name) in [
            (Target::Q, "self_attn", "q_proj"),
            (Target::K, "self_attn", "k_proj"),
            (Target::V, "self_attn", "v_proj"),
            (Target::Down, "mlp", "down_proj"),
        ] {
            let (d_in, d_out) = target_dims(c, t);
            let m = format!("base_model.model.model.layers.{layer}.{group}.{name}");
            let v = |n: usize, k: f32| (0..n).map(|i| k + i as f32 * 0.001).collect::<Vec<f32>>();
            tensors.push((
                format!("{m}.lora_A.weight"),
                vec![r, d_in],
                v(r * d_in, 0.1 * layer as f32),
            ));
            tensors.push((
                format!("{m}.lora_B.weight"),
                vec![d_out, r],
                v(d_out * r, -0.2),
            ));
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    write_safetensors(&dir.join(peft::WEIGHTS_FILE), &tensors, Dtype::F32).unwrap();
    let config = serde_json::json!({
        "r": r, "lora_alpha": 4.0, "target_modules": ["q_proj", "k_proj", "v_proj", "down_proj"],
        "peft_type": "LORA", "use_rslora": rslora, "bias": "none"
    });
    std::fs::write(dir.join(peft::CONFIG_FILE), config.to_string()).unwrap();
}

fn check(tiny: TinyModel, arch: &str, permuted: bool) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny.write(&model).unwrap();
    let adapter = dir.path().join("adapter");
    write_adapter(&model, &adapter, true);
    let files = ModelFiles::open(&model).unwrap();
    let c = files.config.clone();
    let (_, pairs) = peft::read(&adapter, c.num_hidden_layers, &|t| target_dims(&c, t)).unwrap();
    for (dtype, tol) in [(LoraDtype::F32, 0.0), (LoraDtype::F16, 2e-3)] {
        let out = dir.path().join("adapter.gguf");
        let e = export_gguf(&adapter, &c, &out, dtype).unwrap();
        assert_eq!((e.tensors, e.rank), (pairs.len() * 2, 2));
        let g = GgufFile::open(&out).unwrap();
        let md = g.metadata();
        assert_eq!(md.require_str("general.type").unwrap(), "adapter");
        assert_eq!(md.require_str("general.architecture").unwrap(), arch);
        assert_eq!(md.require_str("adapter.type").unwrap(), "lora");
        // rsLoRA: alpha / sqrt(r) as llama.cpp's alpha / r.
        let alpha = md.get_f32("adapter.lora.alpha").unwrap().unwrap();
        assert!((alpha / 2.0 - 4.0 / 2f32.sqrt()).abs() < 1e-6, "{alpha}");
        assert_eq!(g.tensors().len(), pairs.len() * 2);
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len(), "{what}");
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= tol * y.abs().max(1.0),
                    "{what}: {x} vs {y}"
                );
            }
        };
        for p in &pairs {
            let short = match p.target {
                Target::Q => "attn_q",
                Target::K => "attn_k",
                Target::V => "attn_v",
                _ => "ffn_down",
            };
            let name = format!("blk.{}.{short}.weight", p.layer);
            let (sa, a) = g.tensor_f32(&format!("{name}.lora_a")).unwrap();
            let (sb, b) = g.tensor_f32(&format!("{name}.lora_b")).unwrap();
            assert_eq!(sa, [2, p.d_in], "{name}.lora_a");
            assert_eq!(sb, [p.d_out, 2], "{name}.lora_b");
            close(&a, &p.a, &name);
            let heads = match p.target {
                Target::Q => Some(c.num_attention_heads),
                Target::K => Some(c.num_key_value_heads),
                _ => None,
            };
            match heads.filter(|_| permuted) {
                Some(h) => {
                    assert_ne!(b, p.b, "{name}: q/k rows are permuted for llama");
                    close(&unpermute_rows(&b, h, c.head_dim, 2), &p.b, &name);
                }
                None => close(&b, &p.b, &name),
            }
        }
    }
}

#[test]
fn a_llama_adapter_is_written_as_llama_cpp_reads_it() {
    check(TinyModel::llama(3), "llama", true);
}

#[test]
fn a_qwen2_adapter_keeps_its_rows() {
    check(TinyModel::qwen2(3), "qwen2", false);
}
