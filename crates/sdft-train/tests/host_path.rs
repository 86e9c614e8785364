//! The CPU training path (`sdft_model::kernels::train`) against the generic
//! burn-autodiff path: the same loss and LoRA gradients for one micro-batch
//! (rows of different lengths, dropout on, every projection adapted), the same
//! gradients with gradient checkpointing, and the same losses over a 20-step run
//! (on the tiny fixture, and on SmolLM2-135M-Instruct when it is cached).

use std::path::Path;

use burn::prelude::ElementConversion;
use sdft_data::Template;
use sdft_model::assets::{cached_model, SMOLLM2_135M_INSTRUCT};
use sdft_model::fixture::write_tiny_model;
use sdft_model::model::lora;
use sdft_model::{LoadOptions, Model};
use sdft_train::fixture::{tiny_job, write_tiny_dataset};
use sdft_train::step::{host_nll_and_grads, host_train_model, lora_grads, lora_params, summed_nll};
use sdft_train::{Error, ResponseColumn, Sequence, TrainBackend, TrainConfig, TrainJob, Trainer};

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// Two rows of different lengths with targets in their second half.
fn rows() -> Vec<Sequence> {
    [(11, 4), (7, 3)]
        .iter()
        .enumerate()
        .map(|(r, &(len, prompt))| Sequence {
            ids: (0..len)
                .map(|i| 3 + ((i * 7 + r * 13) % 60) as u32)
                .collect(),
            target: (0..len).map(|i| i >= prompt).collect(),
        })
        .collect()
}

#[test]
fn one_micro_batch_gives_the_generic_loss_and_gradients() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), 3).unwrap();
    let device = Default::default();
    let mut model =
        Model::<TrainBackend>::load(&dir.path().join("model"), &LoadOptions::default(), &device)
            .unwrap();
    let config = TrainConfig::default().with_lora(4, 8.0, &["all-linear"]);
    lora::attach(&mut model.llama, &config.lora(), 7, &device).unwrap();
    // B starts at zero; give it values so that every adapter term matters.
    let mut params: Vec<Vec<f32>> = lora_params(&model.llama)
        .into_iter()
        .map(|(_, _, v)| v)
        .collect();
    for (i, p) in params.iter_mut().enumerate() {
        for (j, v) in p.iter_mut().enumerate() {
            if *v == 0.0 {
                *v = (((i * 31 + j * 17) % 23) as f32 - 11.0) * 0.01;
            }
        }
    }
    sdft_train::step::set_lora_params(&mut model.llama, &params, &device);
    let seqs = rows();
    let batch: Vec<&Sequence> = seqs.iter().collect();
    let n_targets: usize = seqs.iter().map(Sequence::n_targets).sum();
    let key = 0x1234_5678_9abc_def1;

    lora::set_dropout_key(&mut model.llama, key);
    let sum = summed_nll(&model.llama, &batch, &device);
    let want_nll: f64 = sum.clone().into_scalar().elem::<f64>();
    let want = lora_grads(&model.llama, &(sum / n_targets as f64).backward());

    let mut host = host_train_model(&model.llama, &model.config, &config.lora())
        .unwrap()
        .expect("the tiny model's weights are flex f32 in the kernels' layouts");
    let (nll, grads) = host_nll_and_grads(&host, &params, &batch, key, 1.0 / n_targets as f64);
    assert!(rel(nll, want_nll) < 1e-5, "nll {nll} vs generic {want_nll}");
    assert_eq!(grads.len(), want.len());
    let norm = |g: &[Vec<f32>]| g.iter().flatten().map(|v| (*v as f64).powi(2)).sum::<f64>();
    let scale = norm(&want).sqrt();
    assert!(scale > 1e-3, "gradients vanish: {scale}");
    for (i, (g, w)) in grads.iter().zip(&want).enumerate() {
        assert_eq!(g.len(), w.len(), "parameter {i}");
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() as f64 <= 1e-4 * scale + 1e-4 * b.abs() as f64,
                "parameter {i} [{j}]: host {a} vs generic {b}"
            );
        }
    }
    // Gradient checkpointing recomputes each layer: the same numbers, bit for bit.
    host.activation_budget = 0;
    let (nll2, grads2) = host_nll_and_grads(&host, &params, &batch, key, 1.0 / n_targets as f64);
    assert_eq!(nll2.to_bits(), nll.to_bits());
    assert!(grads2 == grads, "checkpointed gradients differ");
}

/// Losses of a run of `job` on the host path (or on the generic one).
/// The LoRA config goes down to the training path: adapters that are not the
/// config's (another rank, other targets) are an error naming the tensor and the
/// expected shape, not a silent switch to the generic path.
#[test]
fn adapters_that_differ_from_the_lora_config_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), 3).unwrap();
    let device = Default::default();
    let mut model =
        Model::<TrainBackend>::load(&dir.path().join("model"), &LoadOptions::default(), &device)
            .unwrap();
    let made = TrainConfig::default().with_lora(4, 8.0, &["q_proj", "v_proj"]);
    lora::attach(&mut model.llama, &made.lora(), 7, &device).unwrap();
    let d_in = model.config.hidden_size;
    let adapter_error =
        |c: &TrainConfig| match host_train_model(&model.llama, &model.config, &c.lora()) {
            Err(Error::Adapter {
                tensor,
                expected,
                found,
            }) => (tensor, expected, found),
            Err(other) => panic!("not an adapter error: {other}"),
            Ok(h) => panic!("accepted (host path: {})", h.is_some()),
        };
    let (tensor, expected, found) =
        adapter_error(&made.clone().with_lora(8, 8.0, &["q_proj", "v_proj"]));
    assert_eq!(tensor, "model.layers.0.self_attn.q_proj.lora_A");
    assert_eq!(expected, format!("shape [{d_in}, 8] (lora_rank 8)"));
    assert_eq!(found, format!("shape [{d_in}, 4]"));
    let (tensor, _, found) = adapter_error(&made.clone().with_lora(4, 8.0, &["q_proj"]));
    assert_eq!(tensor, "model.layers.0.self_attn.v_proj.lora_A");
    assert_eq!(found, format!("shape [{d_in}, 4]"));
    let (tensor, _, found) = adapter_error(&made.clone().with_lora(4, 8.0, &["all-linear"]));
    assert_eq!(
        (tensor.as_str(), found.as_str()),
        ("model.layers.0.self_attn.k_proj.lora_A", "no adapter")
    );
    let (tensor, expected, _) =
        adapter_error(&made.clone().with_lora(4, 16.0, &["q_proj", "v_proj"]));
    assert_eq!(tensor, "model.layers.0.self_attn.q_proj");
    assert!(expected.contains("lora_alpha 16"), "{expected}");
    assert!(host_train_model(&model.llama, &model.config, &made.lora()).is_ok());
    // The kernels' own entry takes the rank, scale and dropout from the config
    // and refuses adapters of another rank instead of deriving them.
    use burn::module::AutodiffModule;
    let valid = model.llama.valid();
    let other = made.clone().with_lora(8, 8.0, &["q_proj", "v_proj"]).lora();
    let Err(e) = sdft_train::step::HostTrainModel::from_llama(&valid, &model.config, &other) else {
        panic!("a rank mismatch is an error");
    };
    assert!(e.to_string().contains("expected rank 8"), "{e}");
    let host = sdft_train::step::HostTrainModel::from_llama(&valid, &model.config, &made.lora())
        .unwrap()
        .expect("flex f32 weights take the host path");
    assert_eq!(host.n_adapters(), 2 * model.config.num_hidden_layers);
}

fn losses(job: TrainJob, host: bool) -> Vec<f64> {
    let mut t = Trainer::<TrainBackend>::new(job, &Default::default()).unwrap();
    if host {
        assert!(t.host_path(), "the CPU training path is available on flex");
    } else {
        t.use_generic_path();
        assert!(!t.host_path());
    }
    let mut out = Vec::new();
    t.run(&mut |m, _| out.push(m.loss)).unwrap();
    out
}

fn assert_same_losses(host: &[f64], generic: &[f64]) {
    assert_eq!(host.len(), generic.len());
    let diffs: Vec<f64> = host.iter().zip(generic).map(|(a, b)| rel(*a, *b)).collect();
    for (i, (a, b)) in host.iter().zip(generic).enumerate() {
        assert!(
            diffs[i] < 1e-4,
            "step {}: host loss {a} vs generic {b} (relative differences per step: {diffs:?})",
            i + 1
        );
    }
}

#[test]
fn twenty_steps_give_the_generic_losses() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), 3).unwrap();
    write_tiny_dataset(&dir.path().join("data.json"), 12, 4).unwrap();
    let mut c = TrainConfig::default()
        .with_lora(8, 16.0, &["all-linear"])
        .with_learning_rate(5e-3)
        .with_steps(1, Some(20))
        .with_batch(2, 2);
    c.save_steps = 0;
    c.warmup_steps = 2;
    let host = losses(tiny_job(dir.path(), "host", c.clone(), false), true);
    let generic = losses(tiny_job(dir.path(), "generic", c, false), false);
    assert!(host[19] < host[0], "the loss falls: {host:?}");
    assert_same_losses(&host, &generic);
}

#[test]
fn smollm2_twenty_steps_give_the_generic_losses() {
    // `cached_model` records the skip ("smollm2") when the model is absent.
    let Some(model) = cached_model(&SMOLLM2_135M_INSTRUCT) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.json");
    write_rows(&data);
    // The paper's recipe (learning rate 1e-4, dropout 0.1) on short rows.
    let mut c = TrainConfig::default()
        .with_steps(1, Some(20))
        .with_batch(2, 1);
    c.cutoff_len = 48;
    c.save_steps = 0;
    let job = |out: &str| TrainJob {
        model: model.clone(),
        data: data.clone(),
        template: Template::preset("alpaca").unwrap(),
        response_column: ResponseColumn::Output,
        output: dir.path().join(out),
        config: c.clone(),
        resume: false,
        overwrite: false,
        teacher_template: None,
    };
    let host = losses(job("host"), true);
    let generic = losses(job("generic"), false);
    eprintln!("SmolLM2 losses, host path: {host:?}");
    assert_same_losses(&host, &generic);
}

/// Forty short instruction/output rows of different lengths.
fn write_rows(path: &Path) {
    let words = "the farmer sold forty eggs at the market and bought three bags of seed";
    let w: Vec<&str> = words.split(' ').collect();
    let rows: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            let a = w[..3 + i % 10].join(" ");
            let b = w[i % 5..].join(" ");
            serde_json::json!({"instruction": format!("{a}?"), "output": b})
        })
        .collect();
    std::fs::write(path, serde_json::to_string(&rows).unwrap()).unwrap();
}
