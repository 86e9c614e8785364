//! LoRA training on a tiny random Qwen2 (the fixture model turned into a
//! `Qwen2ForCausalLM` with q/k/v biases): the loss falls, the adapter is written
//! in PEFT's layout under Qwen2's module names, and loading it on the base model
//! gives the trained model's logits (the biases stay the base layer's).

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sdft_core::rng::SplitMix64;
use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::{Architecture, LoadOptions, Model};
use sdft_train::fixture::{
    max_logit_diff, tiny_job, write_tiny_dataset, write_tiny_model, HEADS, HEAD_DIM, KV_HEADS,
    LAYERS,
};
use sdft_train::{TrainBackend, TrainConfig, Trainer};

/// Rewrites the fixture model in `dir` as a Qwen2: `Qwen2ForCausalLM` config and
/// random q/k/v biases added to its safetensors.
fn make_qwen2(dir: &Path) {
    let cfg_path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["architectures"] = serde_json::json!(["Qwen2ForCausalLM"]);
    cfg["model_type"] = "qwen2".into();
    cfg["use_sliding_window"] = false.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let st_path = dir.join("model.safetensors");
    let bytes = std::fs::read(&st_path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut items: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let mut rng = SplitMix64::new(11);
    for i in 0..LAYERS {
        for (p, n) in [("q", HEADS), ("k", KV_HEADS), ("v", KV_HEADS)] {
            let len = n * HEAD_DIM;
            let data = (0..len)
                .flat_map(|_| ((rng.next_f64() - 0.5) as f32).to_le_bytes())
                .collect();
            items.push((
                format!("model.layers.{i}.self_attn.{p}_proj.bias"),
                vec![len],
                data,
            ));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = items
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &st_path).unwrap();
}

#[test]
fn lora_trains_on_a_qwen2_and_exports_peft() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    write_tiny_model(&model_dir, 3).unwrap();
    make_qwen2(&model_dir);
    write_tiny_dataset(&dir.path().join("data.json"), 4, 4).unwrap();
    let mut c = TrainConfig::default()
        .with_lora(8, 16.0, &["q_proj", "v_proj"])
        .with_learning_rate(1e-2)
        .with_steps(1, Some(30))
        .with_batch(2, 1);
    c.lora_dropout = 0.0;
    let job = tiny_job(dir.path(), "run", c, false);
    let mut t = Trainer::<TrainBackend>::new(job, &Default::default()).unwrap();
    let s = t.run(&mut |_, _| {}).unwrap();
    let (first, last) = (s.first_loss.unwrap(), s.last_loss.unwrap());
    assert!(last < first * 0.8, "loss {first} -> {last}");

    let adapter = dir.path().join("run/adapter");
    let bytes = std::fs::read(adapter.join("adapter_model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    assert_eq!(names.len(), LAYERS * 2 * 2);
    assert_eq!(
        names[0],
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    );
    assert!(names.iter().all(|n| !n.contains("bias")));

    let device = default_device();
    let base = Model::<DefaultBackend>::load(&model_dir, &LoadOptions::default(), &device).unwrap();
    assert_eq!(base.config.architecture, Architecture::Qwen2);
    let seqs = vec![vec![3u32, 9, 17, 40, 5, 22]];
    let before = base.logits_all(&seqs).unwrap();
    let mut merged = base;
    merged.load_adapter(&adapter, true).unwrap();
    let mut unmerged =
        Model::<DefaultBackend>::load(&model_dir, &LoadOptions::default(), &device).unwrap();
    unmerged.load_adapter(&adapter, false).unwrap();
    let a = merged.logits_all(&seqs).unwrap();
    let b = unmerged.logits_all(&seqs).unwrap();
    assert!(
        max_logit_diff(&a, &before) > 1e-3,
        "the adapter was trained"
    );
    assert!(max_logit_diff(&a, &b) < 1e-4, "merged and unmerged agree");
}
