//! The trainer end to end on a tiny random model: it overfits a handful of
//! examples, resumes from a checkpoint to the same final adapter, and rejects bad
//! input with errors that name the key.

use std::path::Path;

use sdft_model::fixture::write_tiny_model;
use sdft_train::fixture::{tiny_job, write_tiny_dataset};
use sdft_train::{TrainBackend, TrainConfig, TrainJob, Trainer};

fn setup(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), 3).unwrap();
    write_tiny_dataset(&dir.path().join("data.json"), n, 4).unwrap();
    dir
}

fn train(job: TrainJob) -> sdft_train::TrainSummary {
    let mut t = Trainer::<TrainBackend>::new(job, &Default::default()).unwrap();
    t.run(&mut |_, _| {}).unwrap()
}

#[test]
fn overfits_a_handful_of_examples() {
    let dir = setup(4);
    let mut c = TrainConfig::default()
        .with_lora(8, 16.0, &["all-linear"])
        .with_learning_rate(1e-2)
        .with_steps(1, Some(120))
        .with_batch(2, 1);
    c.lora_dropout = 0.0;
    c.lr_scheduler = sdft_train::schedule::Decay::Constant;
    let s = train(tiny_job(dir.path(), "run", c, false));
    let (first, last) = (s.first_loss.unwrap(), s.last_loss.unwrap());
    assert!(first > 2.0, "a random model starts near ln(64): {first}");
    assert!(last < 0.05, "loss after 120 steps: {last} (from {first})");
    let run = dir.path().join("run");
    for f in [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "metrics.csv",
        "loss.svg",
        "run.json",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("step,epoch,loss,lr,tokens,grad_norm,elapsed\n"));
    assert_eq!(csv.lines().count(), 121);
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["seed"], 42);
    assert_eq!(run_json["data"]["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn resume_from_a_checkpoint_reaches_the_same_adapter() {
    let dir = setup(10);
    let mut c = TrainConfig::default()
        .with_learning_rate(5e-3)
        .with_steps(3, None)
        .with_batch(2, 2);
    c.save_steps = 3;
    c.group_by_length = true;
    c.warmup_steps = 2;
    let full = train(tiny_job(dir.path(), "full", c.clone(), false));
    assert_eq!(
        full.steps, 9,
        "10 examples / (2 x 2) -> 3 steps per epoch, 3 epochs"
    );
    let ckpt = dir.path().join("full/checkpoints/step-6");
    assert!(ckpt.join("trainer_state.json").is_file());
    assert!(ckpt.join("adapter_model.safetensors").is_file());
    // A run that stopped after step 6: only its checkpoint and metrics up to step 7.
    let part = dir.path().join("part");
    std::fs::create_dir_all(part.join("checkpoints")).unwrap();
    copy_dir(&ckpt, &part.join("checkpoints/step-6"));
    std::fs::copy(
        dir.path().join("full/settings.json"),
        part.join("settings.json"),
    )
    .unwrap();
    let csv = std::fs::read_to_string(dir.path().join("full/metrics.csv")).unwrap();
    let partial: Vec<&str> = csv.lines().take(8).collect();
    std::fs::write(part.join("metrics.csv"), partial.join("\n") + "\n").unwrap();
    let mut t = Trainer::<TrainBackend>::new(
        tiny_job(dir.path(), "part", c.clone(), true),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(t.start_step(), 6);
    t.run(&mut |_, _| {}).unwrap();
    // The trainer holds the run directory's lock until it is dropped.
    drop(t);
    let a = std::fs::read(dir.path().join("full/adapter/adapter_model.safetensors")).unwrap();
    let b = std::fs::read(part.join("adapter/adapter_model.safetensors")).unwrap();
    assert!(a == b, "resumed adapter differs from the uninterrupted one");
    // Same metrics rows except wall-clock time.
    let no_time = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    let resumed = std::fs::read_to_string(part.join("metrics.csv")).unwrap();
    assert_eq!(no_time(&resumed), no_time(&csv));
    // Resuming a finished run is refused; so is resuming with another config.
    let again = Trainer::<TrainBackend>::new(
        tiny_job(dir.path(), "part", c.clone(), true),
        &Default::default(),
    );
    assert!(again
        .err()
        .unwrap()
        .to_string()
        .contains("already finished"));
    std::fs::remove_dir_all(part.join("adapter")).unwrap();
    let mut other = c.clone();
    other.learning_rate = 1e-3;
    let err = Trainer::<TrainBackend>::new(
        tiny_job(dir.path(), "part", other, true),
        &Default::default(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("made with other settings: config.learning_rate (recorded"),
        "{err}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn bad_input_names_the_key() {
    let dir = setup(2);
    let err = |j: TrainJob| {
        Trainer::<TrainBackend>::new(j, &Default::default())
            .err()
            .expect("an error")
            .to_string()
    };
    let c = TrainConfig {
        lora_rank: 0,
        ..TrainConfig::default()
    };
    assert!(err(tiny_job(dir.path(), "r", c, false)).contains("lora_rank"));
    let c = TrainConfig::default().with_lora(8, 16.0, &["attn"]);
    let e = err(tiny_job(dir.path(), "r", c, false));
    assert!(e.contains("lora_targets") && e.contains("attn"), "{e}");
    std::fs::write(dir.path().join("empty.json"), "[]").unwrap();
    let mut j = tiny_job(dir.path(), "r", TrainConfig::default(), false);
    j.data = dir.path().join("empty.json");
    let e = err(j);
    assert!(e.contains("empty.json"), "{e}");
    let mut j = tiny_job(dir.path(), "r", TrainConfig::default(), false);
    j.template.response = "no slot".into();
    let e = err(j);
    assert!(e.contains("template") && e.contains("{response}"), "{e}");
}

#[test]
fn an_earlier_run_is_kept_unless_overwrite_is_passed() {
    let dir = setup(2);
    let c = TrainConfig::default()
        .with_steps(1, Some(2))
        .with_batch(2, 1);
    train(tiny_job(dir.path(), "run", c.clone(), false));
    let e = Trainer::<TrainBackend>::new(
        tiny_job(dir.path(), "run", c.clone(), false),
        &Default::default(),
    )
    .err()
    .expect("an earlier run is refused")
    .to_string();
    assert!(e.contains("--resume") && e.contains("--overwrite"), "{e}");
    let mut both = tiny_job(dir.path(), "run", c.clone(), true);
    both.overwrite = true;
    assert!(Trainer::<TrainBackend>::new(both, &Default::default()).is_err());
    // --overwrite starts over, also with other settings than the recorded ones.
    let mut j = tiny_job(dir.path(), "run", c.with_steps(1, Some(3)), false);
    j.overwrite = true;
    let mut t = Trainer::<TrainBackend>::new(j, &Default::default()).unwrap();
    assert_eq!(t.start_step(), 0);
    let steps = t.total_steps();
    t.run(&mut |_, _| {}).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("run/metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + steps, "{csv}");
    assert!(dir
        .path()
        .join("run/adapter/adapter_model.safetensors")
        .is_file());
}
