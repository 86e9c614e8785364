//! LoRA training on a tiny random Qwen2 (the fixture's `Qwen2ForCausalLM`, with
//! q/k/v biases): the loss falls, the adapter is written in PEFT's layout under
//! Qwen2's module names, and loading it on the base model gives the trained
//! model's logits (the biases stay the base layer's).

use safetensors::SafeTensors;
use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::fixture::{max_logit_diff, TinyModel, LAYERS};
use sdft_model::{Architecture, LoadOptions, Model};
use sdft_train::fixture::{tiny_job, write_tiny_dataset};
use sdft_train::{TrainBackend, TrainConfig, Trainer};

#[test]
fn lora_trains_on_a_qwen2_and_exports_peft() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    TinyModel::qwen2(3).write(&model_dir).unwrap();
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
