//! `loss_normalization`: the logged loss of one accumulated optimizer step equals
//! the formula of each convention, computed here from each micro-batch's summed
//! NLL on the untrained model: `Σ nll_k / Σ n_k` (`token`) and transformers
//! 4.34.1's `(1/K) Σ nll_k / n_k` with `K = grad_accum` (`micro-batch`: each
//! micro-batch's `CrossEntropyLoss` mean, divided by
//! `gradient_accumulation_steps` in `Trainer.training_step`, summed over the step).

use burn::prelude::ElementConversion;
use sdft_model::fixture::write_tiny_model;
use sdft_model::{LoadOptions, Model};
use sdft_train::data::{encode_example, read_examples};
use sdft_train::fixture::tiny_job;
use sdft_train::loss::LossNormalization;
use sdft_train::step::summed_nll;
use sdft_train::{ResponseColumn, TrainBackend, TrainConfig, Trainer};

#[test]
fn one_accumulated_step_matches_each_formula() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_tiny_model(&root.join("model"), 3).unwrap();
    // Outputs of 1 to 9 words: micro-batches with very different target counts.
    let rows: Vec<serde_json::Value> = [1usize, 9, 2, 6, 4]
        .iter()
        .enumerate()
        .map(|(r, &k)| {
            let words = |n: usize, salt: usize| {
                (0..n)
                    .map(|i| format!("w{}", 3 + (i * 11 + salt * 7 + r * 5) % 60))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            serde_json::json!({"instruction": words(5, 1), "output": words(k, 2)})
        })
        .collect();
    std::fs::write(
        root.join("data.json"),
        serde_json::to_string(&rows).unwrap(),
    )
    .unwrap();

    let config = |mode: LossNormalization| {
        let mut c = TrainConfig::default()
            .with_steps(1, Some(1))
            .with_batch(1, rows.len());
        c.lora_dropout = 0.0;
        c.loss_normalization = mode;
        c
    };
    let loss = |mode: LossNormalization, out: &str| -> f64 {
        let mut t = Trainer::<TrainBackend>::new(
            tiny_job(root, out, config(mode), false),
            &Default::default(),
        )
        .unwrap();
        let mut first = None;
        t.run(&mut |m, _| {
            first.get_or_insert(m.loss);
        })
        .unwrap();
        first.unwrap()
    };
    let token = loss(LossNormalization::Token, "token");
    let micro = loss(LossNormalization::MicroBatch, "micro");

    // Each example alone (batch 1): its summed NLL and target count on the
    // untrained model (fresh LoRA B is zero, so the adapters add nothing).
    let device = Default::default();
    let model =
        Model::<TrainBackend>::load(&root.join("model"), &LoadOptions::default(), &device).unwrap();
    let job = tiny_job(root, "x", TrainConfig::default(), false);
    let examples = read_examples(&job.data, ResponseColumn::Output, None).unwrap();
    let mut parts = Vec::new();
    for ex in &examples {
        let seq = encode_example(&job.template, ex, 1024, &|p| model.encode_pieces(p)).unwrap();
        let nll: f64 = summed_nll(&model.llama, &[&seq], &device)
            .into_scalar()
            .elem::<f64>();
        parts.push((nll, seq.n_targets() as f64));
    }
    let k = parts.len() as f64;
    let want_token =
        parts.iter().map(|p| p.0).sum::<f64>() / parts.iter().map(|p| p.1).sum::<f64>();
    let want_micro = parts.iter().map(|p| p.0 / p.1).sum::<f64>() / k;
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    assert!(
        rel(token, want_token) < 1e-4,
        "token: {token} vs {want_token}"
    );
    assert!(
        rel(micro, want_micro) < 1e-4,
        "micro-batch: {micro} vs {want_micro}"
    );
    assert!(
        rel(token, micro) > 1e-3,
        "the example should tell the conventions apart: {token} vs {micro}"
    );
}
