//! Data-parallel training (`devices`): several CPU replicas give the adapter,
//! the per-step losses and the checkpoints of a one-device run (up to float
//! summation order), a run may resume on another number of replicas, and bad
//! device names get errors that name the key.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::SafeTensors;
use sdft_model::backend::backend_name;
use sdft_model::fixture::write_tiny_model;
use sdft_train::fixture::{tiny_job, write_tiny_dataset};
use sdft_train::{TrainBackend, TrainConfig, Trainer};

/// 22 examples in micro-batches of 2 -> 11 micro-batches per epoch; with 4 per
/// step the last step of each epoch has 3, so replicas get uneven shares.
fn config() -> TrainConfig {
    let mut c = TrainConfig::default()
        .with_lora(4, 8.0, &["q_proj", "v_proj", "down_proj"])
        .with_learning_rate(5e-3)
        .with_steps(2, None)
        .with_batch(2, 4);
    c.save_steps = 3;
    c.warmup_steps = 1;
    // Dropout stays on (0.1): replicas must draw the masks a one-device run draws.
    c
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(&dir.path().join("model"), 3).unwrap();
    write_tiny_dataset(&dir.path().join("data.json"), 22, 8).unwrap();
    dir
}

fn run(mut t: Trainer<TrainBackend>) -> Vec<(f64, f64)> {
    let mut rows = Vec::new();
    t.run(&mut |m, _| rows.push((m.loss, m.grad_norm))).unwrap();
    rows
}

fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let v = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, v)
        })
        .collect()
}

/// The largest absolute difference between two adapter files (same names).
fn max_diff(a: &Path, b: &Path) -> f32 {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "tensor names"
    );
    a.iter()
        .flat_map(|(k, x)| x.iter().zip(&b[k]).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

fn state_without_time(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("trainer_state.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("elapsed_secs");
    v
}

#[test]
fn replicas_reach_the_one_device_adapter() {
    let dir = setup();
    let root = dir.path();
    let device = Default::default();
    let one =
        run(Trainer::<TrainBackend>::new(tiny_job(root, "one", config(), false), &device).unwrap());
    assert_eq!(one.len(), 6, "3 steps per epoch, 2 epochs");
    let adapter = |run: &str| root.join(run).join("adapter/adapter_model.safetensors");
    // B starts at zero: a trained B makes the comparisons below non-trivial.
    let trained = tensors(&adapter("one"));
    assert!(trained
        .iter()
        .filter(|(k, _)| k.contains("lora_B"))
        .all(|(_, v)| v.iter().any(|x| x.abs() > 1e-4)));
    for n in [2usize, 3] {
        let out = format!("dp{n}");
        let devices: Vec<_> = std::iter::repeat_with(Default::default).take(n).collect();
        let t =
            Trainer::<TrainBackend>::with_devices(tiny_job(root, &out, config(), false), &devices)
                .unwrap();
        assert_eq!(t.n_replicas(), n);
        let rows = run(t);
        assert_eq!(rows.len(), one.len());
        for (step, (a, b)) in one.iter().zip(&rows).enumerate() {
            assert!(
                (a.0 - b.0).abs() < 1e-6 && (a.1 - b.1).abs() < 1e-5,
                "{n} replicas, step {}: loss/grad-norm {:?} vs one device {:?}",
                step + 1,
                b,
                a
            );
        }
        let d = max_diff(&adapter("one"), &adapter(&out));
        assert!(d < 1e-5, "{n} replicas: adapter differs by {d}");
        // The checkpoint of step 3 is the one-device run's.
        let (c1, cn) = (
            root.join("one/checkpoints/step-3"),
            root.join(&out).join("checkpoints/step-3"),
        );
        assert_eq!(state_without_time(&c1), state_without_time(&cn));
        for f in ["adapter_model.safetensors", "optimizer.safetensors"] {
            let d = max_diff(&c1.join(f), &cn.join(f));
            assert!(d < 1e-5, "{n} replicas: checkpoint {f} differs by {d}");
        }
        let run_json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(&out).join("run.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(run_json["devices"].as_array().unwrap().len(), n);
    }

    // A one-device run stopped after step 3 resumes on two replicas (and the
    // `devices` key does not count as a config change) to the same adapter.
    let part = root.join("part");
    std::fs::create_dir_all(part.join("checkpoints/step-3")).unwrap();
    for e in std::fs::read_dir(root.join("one/checkpoints/step-3")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(
            e.path(),
            part.join("checkpoints/step-3").join(e.file_name()),
        )
        .unwrap();
    }
    // The stopped run had recorded its settings (devices are not among them).
    std::fs::copy(root.join("one/settings.json"), part.join("settings.json")).unwrap();
    let csv = std::fs::read_to_string(root.join("one/metrics.csv")).unwrap();
    let head: Vec<&str> = csv.lines().take(4).collect();
    std::fs::write(part.join("metrics.csv"), head.join("\n") + "\n").unwrap();
    let c = config().with_devices(&["cpu", "cpu"]);
    let t = Trainer::<TrainBackend>::with_devices(
        tiny_job(root, "part", c, true),
        &[Default::default(), Default::default()],
    )
    .unwrap();
    assert_eq!((t.start_step(), t.n_replicas()), (3, 2));
    let rows = run(t);
    assert_eq!(rows.len(), 3);
    for (a, b) in one[3..].iter().zip(&rows) {
        assert!((a.0 - b.0).abs() < 1e-6, "resumed loss {b:?} vs {a:?}");
    }
    let d = max_diff(&adapter("one"), &adapter("part"));
    assert!(d < 1e-5, "resumed on 2 replicas: adapter differs by {d}");
}

#[test]
fn the_devices_key_is_parsed_with_errors_naming_it() {
    let dir = setup();
    let root = dir.path();
    let err = |c: TrainConfig| -> String {
        Trainer::<TrainBackend>::from_job(tiny_job(root, "bad", c, false))
            .err()
            .expect("an error")
            .to_string()
    };
    let e = err(config().with_devices(&["tpu:0"]));
    assert!(
        e.contains("`devices`") && e.contains("tpu:0") && e.contains("unknown device"),
        "{e}"
    );
    let e = err(config().with_devices(&["cpu", ""]));
    assert!(e.contains("`devices`"), "{e}");
    let e = Trainer::<TrainBackend>::with_devices(tiny_job(root, "bad", config(), false), &[])
        .err()
        .expect("an error")
        .to_string();
    assert!(e.contains("`devices`"), "{e}");
    // TOML: `devices = [...]`.
    let toml = root.join("dp.toml");
    std::fs::write(&toml, "devices = [\"cpu\", \"cpu\"]\nmax_steps = 2\n").unwrap();
    let c = TrainConfig::from_toml_file(&toml).unwrap();
    assert_eq!(c.devices, ["cpu", "cpu"]);
    if backend_name() == "flex" {
        let e = err(config().with_devices(&["cuda:1"]));
        assert!(
            e.contains("--devices") && e.contains("cuda:1") && e.contains("flex"),
            "{e}"
        );
        let mut t = Trainer::<TrainBackend>::from_job(tiny_job(root, "toml", c, false)).unwrap();
        assert_eq!(t.n_replicas(), 2);
        t.run(&mut |_, _| {}).unwrap();
        assert!(root
            .join("toml/adapter/adapter_model.safetensors")
            .is_file());
    }
}
