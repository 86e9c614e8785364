//! On-policy self-distillation end to end on the tiny fixture: the loss's LoRA
//! gradients on the CPU training path against finite differences, a run that
//! writes its rollout rounds and per-step numbers, and a killed run that
//! resumes to the same adapter.

use std::path::Path;

use sdft_data::Template;
use sdft_model::fixture::write_tiny_model;
use sdft_model::kernels::train::{DistillLoss, Divergence};
use sdft_model::model::lora;
use sdft_model::{LoadOptions, Model};
use sdft_train::fixture::{tiny_job, write_tiny_dataset};
use sdft_train::on_policy::{DivergenceName, OnPolicyConfig, Teacher};
use sdft_train::step::{host_distill_and_grads, host_train_model, lora_params};
use sdft_train::{Sequence, TrainBackend, TrainConfig, TrainJob, Trainer};

fn setup(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), 3).unwrap();
    write_tiny_dataset(&dir.path().join("data.json"), n, 4).unwrap();
    dir
}

fn on_policy_job(root: &Path, out: &str, config: TrainConfig, resume: bool) -> TrainJob {
    let mut job = tiny_job(root, out, config, resume);
    job.teacher_template = Some(Template::preset("alpaca_distill_using").unwrap());
    job
}

fn config(steps: usize, every: usize) -> TrainConfig {
    let mut on_policy = OnPolicyConfig {
        rollouts_every: every,
        ..OnPolicyConfig::default()
    };
    on_policy.sampling.max_new_tokens = 8;
    let mut c = TrainConfig::default()
        .with_lora(4, 8.0, &["q_proj", "v_proj"])
        .with_learning_rate(1e-2)
        .with_steps(1, Some(steps))
        .with_batch(2, 1)
        .with_on_policy(on_policy);
    c.lr_scheduler = sdft_train::schedule::Decay::Constant;
    c
}

/// The divergence's gradient through the whole network (head, norms,
/// attention, LoRA) equals central differences of the loss in the LoRA
/// parameters, for each divergence and support.
#[test]
fn lora_gradients_match_finite_differences() {
    let dir = setup(1);
    let device = Default::default();
    let mut model =
        Model::<TrainBackend>::load(&dir.path().join("model"), &LoadOptions::default(), &device)
            .unwrap();
    let config = TrainConfig::default().with_lora(2, 4.0, &["q_proj", "v_proj"]);
    lora::attach(&mut model.llama, &config.lora(), 7, &device).unwrap();
    let mut params: Vec<Vec<f32>> = lora_params(&model.llama)
        .into_iter()
        .map(|(_, _, v)| v)
        .collect();
    for (i, p) in params.iter_mut().enumerate() {
        for (j, v) in p.iter_mut().enumerate() {
            if *v == 0.0 {
                *v = (((i * 31 + j * 17) % 23) as f32 - 11.0) * 0.05;
            }
        }
    }
    let host = host_train_model(&model.llama, &model.config, &config.lora())
        .unwrap()
        .expect("the fixture runs on the CPU training path");
    let seq = Sequence {
        ids: vec![3, 9, 17, 25, 33, 41, 12, 7],
        target: vec![false, false, false, false, true, true, true, true],
    };
    let vocab = sdft_model::fixture::VOCAB;
    let targets = seq.n_targets();
    // A teacher: fixed log-probability rows, one per target.
    let mut teacher = Vec::with_capacity(targets * vocab);
    for r in 0..targets {
        let logits: Vec<f64> = (0..vocab)
            .map(|j| (((r * 37 + j * 11) % 29) as f64 - 14.0) * 0.2)
            .collect();
        let lse = logits.iter().map(|x| x.exp()).sum::<f64>().ln();
        teacher.extend(logits.iter().map(|x| (x - lse) as f32));
    }
    for loss in [
        DistillLoss::default(),
        DistillLoss {
            divergence: Divergence::Forward,
            topk: 0,
            tail: true,
        },
        DistillLoss {
            divergence: Divergence::Jsd { alpha: 0.5 },
            topk: 5,
            tail: false,
        },
    ] {
        let value =
            |p: &[Vec<f32>]| host_distill_and_grads(&host, p, &[&seq], &teacher, &loss, 0, 1.0).0;
        let (_, grads) = host_distill_and_grads(&host, &params, &[&seq], &teacher, &loss, 0, 1.0);
        // Entries of the first and last adapters' A and B.
        let n = params.len();
        for (i, j) in [(0, 0), (1, 1), (n - 2, 3), (n - 1, 2)] {
            let eps = 2e-3f32;
            let mut up = params.clone();
            up[i][j] += eps;
            let mut down = params.clone();
            down[i][j] -= eps;
            let numeric = (value(&up) - value(&down)) / (2.0 * eps as f64);
            let analytic = grads[i][j] as f64;
            assert!(
                (numeric - analytic).abs() <= 2e-2 * analytic.abs().max(1e-2),
                "{loss:?} parameter {i}[{j}]: numeric {numeric}, analytic {analytic}"
            );
        }
    }
}

#[test]
fn a_run_samples_rounds_and_records_them() {
    let dir = setup(6);
    let c = config(6, 2);
    let mut t = Trainer::<TrainBackend>::new(
        on_policy_job(dir.path(), "run", c, false),
        &Default::default(),
    )
    .unwrap();
    let summary = t.run(&mut |_, _| {}).unwrap();
    drop(t);
    assert_eq!(summary.steps, 6);
    let run = dir.path().join("run");
    for round in 0..3 {
        let f = run.join(format!("rollouts/round-{round:06}.jsonl"));
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.trim().is_empty(), "{}", f.display());
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(first["text"].is_string() && first["tokens"].as_u64().unwrap() >= 1);
    }
    assert!(!run.join("rollouts/round-000003.jsonl").exists());
    let csv = std::fs::read_to_string(run.join("on_policy.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], sdft_train::on_policy::CSV_HEADER);
    assert_eq!(lines.len(), 7);
    // Sampling is charged to the first step of each round only.
    let rollout_secs: Vec<f64> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert!(rollout_secs[0] > 0.0 && rollout_secs[1] == 0.0 && rollout_secs[2] > 0.0);
    let kl: Vec<f64> = lines[1..]
        .iter()
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(kl.iter().all(|k| k.is_finite() && *k >= 0.0), "{kl:?}");
    let settings = std::fs::read_to_string(run.join("settings.json")).unwrap();
    assert!(settings.contains("alpaca_distill_using") && settings.contains("on_policy"));
}

#[test]
fn a_killed_run_resumes_to_the_same_adapter() {
    let mut c = config(6, 2);
    c.on_policy.as_mut().unwrap().divergence = DivergenceName::Jsd;
    killed_run_resumes_to_the_same_adapter(c);
}

/// With a moving-average teacher the average is part of what a resume must
/// restore: without it the teacher after the resume would be another model.
#[test]
fn a_killed_run_with_an_ema_teacher_resumes_to_the_same_adapter() {
    let mut c = config(6, 2);
    let o = c.on_policy.as_mut().unwrap();
    o.teacher = Teacher::Ema;
    o.ema_decay = 0.5;
    killed_run_resumes_to_the_same_adapter(c);
}

fn killed_run_resumes_to_the_same_adapter(mut c: TrainConfig) {
    let dir = setup(8);
    c.save_steps = 3;
    let mut t = Trainer::<TrainBackend>::new(
        on_policy_job(dir.path(), "full", c.clone(), false),
        &Default::default(),
    )
    .unwrap();
    t.run(&mut |_, _| {}).unwrap();
    drop(t);
    // What a run killed during step 5 leaves: the checkpoint of step 3, the
    // rounds sampled so far (0: steps 1-2, 1: steps 3-4), metrics to step 4.
    let full = dir.path().join("full");
    let part = dir.path().join("part");
    copy_dir(
        &full.join("checkpoints/step-3"),
        &part.join("checkpoints/step-3"),
    );
    for f in ["rollouts/round-000000.jsonl", "rollouts/round-000001.jsonl"] {
        std::fs::create_dir_all(part.join("rollouts")).unwrap();
        std::fs::copy(full.join(f), part.join(f)).unwrap();
    }
    std::fs::copy(full.join("settings.json"), part.join("settings.json")).unwrap();
    for (f, keep) in [("metrics.csv", 5), ("on_policy.csv", 5)] {
        let text = std::fs::read_to_string(full.join(f)).unwrap();
        let head: Vec<&str> = text.lines().take(keep).collect();
        std::fs::write(part.join(f), head.join("\n") + "\n").unwrap();
    }
    let mut t = Trainer::<TrainBackend>::new(
        on_policy_job(dir.path(), "part", c, true),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(t.start_step(), 3);
    t.run(&mut |_, _| {}).unwrap();
    drop(t);
    let a = std::fs::read(full.join("adapter/adapter_model.safetensors")).unwrap();
    let b = std::fs::read(part.join("adapter/adapter_model.safetensors")).unwrap();
    assert!(
        a == b,
        "the resumed adapter differs from the uninterrupted one"
    );
    for f in ["rollouts/round-000002.jsonl", "metrics.csv"] {
        let no_time = |t: String| -> Vec<String> {
            t.lines()
                .map(|l| l.rsplit_once(',').map_or(l, |x| x.0).to_string())
                .collect()
        };
        let (x, y) = (
            std::fs::read_to_string(full.join(f)).unwrap(),
            std::fs::read_to_string(part.join(f)).unwrap(),
        );
        if f.ends_with(".jsonl") {
            assert_eq!(x, y, "{f}");
        } else {
            assert_eq!(no_time(x), no_time(y), "{f}");
        }
    }
}

/// The teacher's moving average: `ema_k = d·ema_(k−1) + (1 − d)·params_k` in
/// the checkpoints of consecutive steps; `live` keeps the student's own
/// parameters; and the averaged teacher starts as the seed (the initial
/// adapter's `B` is zero), so the first step's loss equals the frozen
/// teacher's and later ones do not.
#[test]
fn the_teacher_average_follows_the_student() {
    let dir = setup(6);
    let run = |name: &str, teacher: Teacher, decay: f64| {
        let mut c = config(4, 1);
        c.save_steps = 1;
        let o = c.on_policy.as_mut().unwrap();
        o.teacher = teacher;
        o.ema_decay = decay;
        let mut t = Trainer::<TrainBackend>::new(
            on_policy_job(dir.path(), name, c, false),
            &Default::default(),
        )
        .unwrap();
        t.run(&mut |_, _| {}).unwrap();
        drop(t);
        dir.path().join(name)
    };
    let tensors = |run_dir: &Path, step: usize, prefix: &str| -> Vec<Vec<f32>> {
        let path = run_dir.join(format!("checkpoints/step-{step}/optimizer.safetensors"));
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<String> = st
            .names()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .map(|n| n.to_string())
            .collect();
        names.sort();
        assert!(!names.is_empty(), "{prefix}* in {}", path.display());
        names
            .iter()
            .map(|n| {
                st.tensor(n)
                    .unwrap()
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
            .collect()
    };
    let d = 0.5f32;
    let ema = run("ema", Teacher::Ema, d as f64);
    for step in 2..=3 {
        let before = tensors(&ema, step - 1, "teacher_ema.");
        let params = tensors(&ema, step, "param.");
        let after = tensors(&ema, step, "teacher_ema.");
        for ((e0, p), e1) in before.iter().zip(&params).zip(&after) {
            for ((x, y), z) in e0.iter().zip(p).zip(e1) {
                assert_eq!(d * x + (1.0 - d) * y, *z, "step {step}");
            }
        }
        assert_ne!(after, params, "the average lags the student at step {step}");
    }
    let live = run("live", Teacher::Live, 0.95);
    assert_eq!(
        tensors(&live, 2, "teacher_ema."),
        tensors(&live, 2, "param.")
    );
    let base = run("base", Teacher::Base, 0.95);
    let e = std::fs::read(base.join("checkpoints/step-1/optimizer.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&e).unwrap();
    assert!(st.names().iter().all(|n| !n.starts_with("teacher_ema")));
    let kl = |run_dir: &Path| -> Vec<f64> {
        std::fs::read_to_string(run_dir.join("on_policy.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect()
    };
    let (kb, ke) = (kl(&base), kl(&ema));
    assert_eq!(kb[0], ke[0], "step 1: both teachers are the seed");
    assert_ne!(kb[1..], ke[1..], "later steps: the averaged teacher moved");
}

#[test]
fn bad_setups_are_named() {
    let dir = setup(2);
    // No teacher template.
    let e = Trainer::<TrainBackend>::new(
        tiny_job(dir.path(), "a", config(1, 1), false),
        &Default::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("teacher_template"), "{e}");
    // A teacher template that does not show the demonstration.
    let mut job = tiny_job(dir.path(), "b", config(1, 1), false);
    job.teacher_template = Some(Template::preset("alpaca").unwrap());
    let e = Trainer::<TrainBackend>::new(job, &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("teacher_template") && e.contains("{resp}"),
        "{e}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
