//! An adapter evaluated on a server: `sdft model export-lora` writes a LoRA
//! adapter as llama.cpp's GGUF adapter, a real `llama-server` loads it
//! (`--lora-scaled FILE:0`, so not applied by default), and `sdft eval run --served-adapter 0`
//! evaluates it there. Its greedy texts must equal the in-process evaluation
//! of the same adapter (`--adapter DIR`) on at least 14 of 16 rows (the two
//! engines' kernels round differently; a row whose top-2 margin is tiny can
//! flip), and differ from the base model's on the server (the adapter is
//! applied). Needs llama-server and the F32 SmolLM2 GGUF that `cargo xtask
//! llama-server` writes, and the paper's GSM8K test file (SDFT_SHARED).

#[path = "support/llama_server.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sdft_model::model::lora::peft::target_dims;
use sdft_model::model::lora::Target;
use serde_json::{json, Value};
use support::{fails, llama_server, ok, start};

/// A PEFT adapter on q_proj and v_proj of every layer (rank 8, alpha 16) with
/// pseudo-random A and B, large enough to change greedy answers.
fn write_adapter(model: &Path, dir: &Path) {
    let files = sdft_model::ModelFiles::open(model).unwrap();
    let config = &files.config;
    let r = 8usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.14
    };
    let mut tensors: Vec<(String, [usize; 2], Vec<f32>)> = Vec::new();
    for layer in 0..config.num_hidden_layers {
        for (target, name) in [(Target::Q, "q_proj"), (Target::V, "v_proj")] {
            let (d_in, d_out) = target_dims(config, target);
            let module = format!("base_model.model.model.layers.{layer}.self_attn.{name}");
            let a: Vec<f32> = (0..r * d_in).map(|_| next()).collect();
            let b: Vec<f32> = (0..d_out * r).map(|_| next()).collect();
            tensors.push((format!("{module}.lora_A.weight"), [r, d_in], a));
            tensors.push((format!("{module}.lora_B.weight"), [d_out, r], b));
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in &tensors {
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = Value::Object(header).to_string().into_bytes();
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend(h);
    file.extend(data);
    std::fs::write(dir.join("adapter_model.safetensors"), file).unwrap();
    let cfg = json!({
        "r": r, "lora_alpha": 16.0, "lora_dropout": 0.0,
        "target_modules": ["q_proj", "v_proj"], "peft_type": "LORA",
        "task_type": "CAUSAL_LM", "bias": "none", "use_rslora": false
    });
    std::fs::write(dir.join("adapter_config.json"), cfg.to_string()).unwrap();
}

fn texts(run: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(run.join("gsm8k.generations.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["output"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn settings(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("gsm8k.settings.json")).unwrap())
        .unwrap()
}

#[test]
fn an_exported_adapter_served_by_llama_server_evaluates_as_in_process() {
    let Some(bin) = llama_server() else {
        return;
    };
    let model: PathBuf = sdft_assets::sdft_home().join("models/SmolLM2-135M-Instruct.F32.gguf");
    if !model.is_file() {
        sdft_assets::skip(
            "llama-server",
            &format!(
                "no {} (cargo xtask llama-server writes it); the served-adapter test did not run",
                model.display()
            ),
        );
        return;
    }
    let Some(shared) = std::env::var_os("SDFT_SHARED").map(PathBuf::from) else {
        sdft_assets::skip(
            "shared-data",
            "SDFT_SHARED is unset; the served-adapter test did not run",
        );
        return;
    };
    let data_dir = shared.join("data/sdft");
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("adapter");
    write_adapter(&model, &adapter);
    let gguf = dir.path().join("adapter.gguf");
    let m = model.to_str().unwrap();
    ok(&[
        "model",
        "export-lora",
        "--model",
        m,
        "--adapter",
        adapter.to_str().unwrap(),
        "--output",
        gguf.to_str().unwrap(),
    ]);
    // Loaded at scale 0: requests without `lora` run the base model. No host
    // prompt cache: llama-server restores a prompt's cached state whatever
    // adapter computed it (docs/scale-out.md).
    let scaled = format!("{}:0", gguf.display());
    let server = start(
        &bin,
        &model,
        &["--lora-scaled", &scaled, "--cache-ram", "0"],
    );
    let listed: Value = ureq::get(&format!("{}/lora-adapters", server.root))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(listed[0]["id"], 0, "{listed}");
    let url = format!("openai:{}", server.url);
    let eval = |out: &Path, extra: &[&str]| {
        let base = [
            "eval",
            "run",
            "--model",
            m,
            "--benchmarks",
            "gsm8k",
            "--limit",
            "16",
            "--greedy",
            "--max-new-tokens",
            "48",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        ok(&[&base[..], extra].concat());
    };
    let a = adapter.to_str().unwrap();
    // One request at a time: llama-server's results depend on which requests
    // share a batch, which concurrency leaves to timing.
    let served_args = [
        "--generator",
        &url,
        "--served-model",
        "smollm2",
        "--concurrency",
        "1",
    ];
    let (local, served, base) = (
        dir.path().join("local"),
        dir.path().join("served"),
        dir.path().join("served-base"),
    );
    eval(&base, &served_args);
    eval(&local, &["--adapter", a]);
    eval(
        &served,
        &[&served_args[..], &["--adapter", a, "--served-adapter", "0"]].concat(),
    );
    let (tl, ts, tb) = (texts(&local), texts(&served), texts(&base));
    assert_eq!(tl.len(), 16);
    let differ: Vec<&String> = tl.keys().filter(|id| tl[*id] != ts[*id]).collect();
    for id in &differ {
        eprintln!(
            "row {id} differs:\n  in-process: {:?}\n  served:     {:?}",
            tl[*id], ts[*id]
        );
    }
    assert!(
        differ.len() <= 2,
        "{} of 16 rows differ between the in-process and the served adapter",
        differ.len()
    );
    let changed = ts.keys().filter(|id| ts[*id] != tb[*id]).count();
    assert!(
        changed >= 8,
        "the served adapter changed only {changed} of 16 answers: is it applied?"
    );
    let (sl, ss) = (settings(&local), settings(&served));
    assert_eq!(sl["adapter_sha256"], ss["adapter_sha256"]);
    assert!(ss["adapter_sha256"].is_string());
    assert_eq!(ss["served_adapter"], "0");
    // A served adapter is identified by its local copy.
    let x = dir.path().join("x");
    let e = fails(
        &[
            &[
                "eval",
                "run",
                "--model",
                m,
                "--benchmarks",
                "gsm8k",
                "--served-adapter",
                "0",
                "--output",
                x.to_str().unwrap(),
            ][..],
            &served_args[..],
        ]
        .concat(),
    );
    assert!(e.contains("--adapter DIR"), "{e}");
}
