//! A real LoRA run on SmolLM2-135M-Instruct (the cached GGUF) over GSM8K training
//! rows with a short cutoff: the loss falls, the adapter loads back, and merged and
//! unmerged logits match. Skipped (`sdft_assets::skip`) when the model or data is absent.

use std::path::PathBuf;

use sdft_data::Template;
use sdft_model::assets::{cached_model, SMOLLM2_135M_INSTRUCT};
use sdft_model::backend::DefaultBackend;
use sdft_model::fixture::max_logit_diff;
use sdft_model::Model;
use sdft_train::schedule::Decay;
use sdft_train::{ResponseColumn, TrainBackend, TrainConfig, TrainJob, Trainer};

fn gsm8k() -> Option<PathBuf> {
    let shared = std::env::var_os("SDFT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let p = shared.join("data/sdft/gsm8k_train.json");
    if !p.is_file() {
        sdft_model::assets::skip(
            "shared-data",
            &format!(
                "{} is absent (set SDFT_SHARED=../shared); the real LoRA run did not run",
                p.display()
            ),
        );
        return None;
    }
    Some(p)
}

#[test]
fn smollm2_lora_run_loss_falls_and_adapter_round_trips() {
    // Each lookup records its own skip when its file is absent.
    let (Some(model), Some(data)) = (cached_model(&SMOLLM2_135M_INSTRUCT), gsm8k()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = TrainConfig::default()
        .with_learning_rate(2e-3)
        .with_steps(1, Some(4))
        .with_batch(2, 1);
    c.cutoff_len = 64;
    c.limit = Some(2);
    c.lora_dropout = 0.0;
    c.lr_scheduler = Decay::Constant;
    c.save_steps = 0;
    let job = TrainJob {
        model: model.clone(),
        data,
        template: Template::preset("gsm8k").unwrap(),
        response_column: ResponseColumn::Output,
        output: dir.path().join("run"),
        config: c,
        resume: false,
        overwrite: false,
        teacher_template: None,
    };
    let mut t = Trainer::<TrainBackend>::new(job, &Default::default()).unwrap();
    let mut losses = Vec::new();
    let s = t.run(&mut |m, _| losses.push(m.loss)).unwrap();
    eprintln!("SmolLM2 LoRA losses per step (same batch): {losses:?}");
    assert_eq!(losses.len(), 4);
    assert!(losses[3] < losses[0] * 0.9, "loss did not fall: {losses:?}");

    let ids = vec![t
        .model()
        .tokenizer
        .encode_prompt("Natalia sold clips to 48 of her friends")
        .unwrap()];
    let load =
        || Model::<DefaultBackend>::load(&model, &Default::default(), &Default::default()).unwrap();
    let base = load().logits_all(&ids).unwrap();
    let mut unmerged = load();
    unmerged.load_adapter(&s.adapter_dir, false).unwrap();
    let mut merged = load();
    merged.load_adapter(&s.adapter_dir, true).unwrap();
    let (u, m) = (
        unmerged.logits_all(&ids).unwrap(),
        merged.logits_all(&ids).unwrap(),
    );
    let diff = max_logit_diff;
    assert!(diff(&u, &base) > 1e-2, "the adapter changes the model");
    let d = diff(&u, &m);
    eprintln!("merged vs unmerged max |logit diff|: {d:e}");
    assert!(d < 2e-3, "merged vs unmerged: {d}");
}
