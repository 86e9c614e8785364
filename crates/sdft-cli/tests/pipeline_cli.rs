//! `sdft pipeline` end to end on a tiny random model and tiny data (seconds): every
//! artefact and the manifest; a second run is a no-op; a run killed (SIGKILL, whole
//! process group) in the middle of training resumes and finishes.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn setup(dir: &Path) -> PathBuf {
    let model = dir.join("tiny-model");
    sdft_model::fixture::write_tiny_model(&model, 3).unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    sdft_train::fixture::write_tiny_dataset(&data.join("train.json"), 24, 5).unwrap();
    std::fs::write(
        data.join("gsm8k_test.json"),
        r#"[{"question": "w5 w6 w7", "answer": "w8 w9\nThe answer is 3."},
            {"question": "w10 w11", "answer": "w12\nThe answer is 4."}]"#,
    )
    .unwrap();
    std::fs::write(
        data.join("harmful_behaviors.csv"),
        "goal,target\nw20 w21 w22,w23\nw24 w25,w26\n",
    )
    .unwrap();
    std::fs::write(
        data.join("alpaca_eval.json"),
        r#"[{"instruction": "w30 w31", "output": "w32", "generator": "g", "dataset": "d"},
            {"instruction": "w33 w34 w35", "output": "w36", "generator": "g", "dataset": "d"},
            {"instruction": "w37", "output": "w38", "generator": "g", "dataset": "d"}]"#,
    )
    .unwrap();
    let config = dir.join("experiment.toml");
    std::fs::write(
        &config,
        format!(
            r#"name = "tiny"
model = "{}"
seed = 7

[data]
file = "train.json"
task = "alpaca"

[distill]
max_new_tokens = 6
batch_size = 8
measure_gap = true

[train]
epochs = 3
batch_size = 2
grad_accum = 2
learning_rate = 0.01
cutoff_len = 64
save_steps = 2

[eval]
benchmarks = ["gsm8k", "advbench", "drift", "gsm8k_ll"]
limit = 2
greedy = true
max_new_tokens = 4
"#,
            model.display()
        ),
    )
    .unwrap();
    config
}

fn pipeline(config: &Path, data: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sdft"));
    c.args(["pipeline", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg("--output")
        .arg(out);
    c
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The distill summary, both training `run.json`, every `results.json` and the
/// pipeline's `manifest.json` record one model hash (the content-hash rule of
/// `sdft_core::provenance`), and each data and adapter hash is that of its file.
fn same_provenance_everywhere(run: &Path, task_data: &Path) {
    use sdft_core::provenance::content_hash;
    let m = manifest(run);
    let model = m["model_sha256"].as_str().unwrap().to_string();
    assert_eq!(
        model,
        content_hash(Path::new(m["model"].as_str().unwrap())).unwrap()
    );
    let data = content_hash(task_data).unwrap();
    assert_eq!(m["data_sha256"], data.as_str());
    let summary = read_json(&run.join("distill/distilled.summary.json"));
    assert_eq!(
        summary["manifest"]["model_sha256"],
        model.as_str(),
        "distill summary"
    );
    assert_eq!(
        summary["manifest"]["data_sha256"],
        data.as_str(),
        "distill summary"
    );
    let distilled = content_hash(&run.join("distill/distilled.parquet")).unwrap();
    for (stage, data) in [("train-vanilla", &data), ("train-sdft", &distilled)] {
        let r = read_json(&run.join(stage).join("run.json"));
        assert_eq!(r["model"]["sha256"], model.as_str(), "{stage}/run.json");
        assert_eq!(r["data"]["sha256"], data.as_str(), "{stage}/run.json");
    }
    for (stage, adapter) in [
        ("eval-seed", None),
        ("eval-vanilla", Some("train-vanilla/adapter")),
        ("eval-sdft", Some("train-sdft/adapter")),
    ] {
        let r = read_json(&run.join(stage).join("results.json"));
        let adapter = adapter.map(|a| content_hash(&run.join(a)).unwrap());
        for info in std::iter::once(&r["model"]).chain(
            r["benchmarks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| &b["hashes"]["model"]),
        ) {
            assert_eq!(info["sha256"], model.as_str(), "{stage}/results.json");
            assert_eq!(
                info["adapter_sha256"].as_str(),
                adapter.as_deref(),
                "{stage}"
            );
        }
        for b in r["benchmarks"].as_array().unwrap() {
            let path = Path::new(b["hashes"]["data_path"].as_str().unwrap());
            assert_eq!(
                b["hashes"]["data_sha256"],
                content_hash(path).unwrap().as_str()
            );
        }
    }
}

fn manifest(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn the_pipeline_runs_skips_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let data = dir.path().join("data");
    let run = dir.path().join("run");
    let o = pipeline(&config, &data, &run).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    for p in [
        "manifest.json",
        "report.md",
        "eval-seed/results.json",
        "eval-vanilla/results.json",
        "eval-sdft/results.json",
        "distill/distilled.parquet",
        "distill/distilled.summary.json",
        "train-vanilla/adapter/adapter_model.safetensors",
        "train-vanilla/adapter/adapter_config.json",
        "train-sdft/adapter/adapter_model.safetensors",
        "train-sdft/metrics.csv",
    ] {
        assert!(run.join(p).exists(), "missing {p}\n{err}");
    }
    let svgs = std::fs::read_dir(&run)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "svg")
        })
        .count();
    assert!(svgs >= 2, "plots in the run folder");
    let m = manifest(&run);
    assert_eq!(m["seed"], 7);
    assert_eq!(m["distill_template"], "alpaca_distill_using");
    assert_eq!(m["train_template"], "alpaca");
    assert_eq!(m["model_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(m["data_sha256"].as_str().unwrap().len(), 64);
    let stages = m["stages"].as_object().unwrap();
    assert_eq!(stages.len(), 6);
    assert!(stages.values().all(|s| s["status"] == "done"));
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for want in [
        "eval-seed",
        "eval-sdft",
        "## Self-distillation",
        "Distribution gap",
        "## Stages",
        "| drift | **kl** ↓ |",
        "| gsm8k_ll | **logprob** ↑ |",
        // The paired tables name the per-row scores they compare.
        "| drift | kl_response_mean ↓ | ",
        "| gsm8k_ll | row_mean_logprob ↑ | ",
        "## eval-vanilla vs. eval-seed",
        "## eval-sdft vs. eval-seed",
        "## eval-vanilla vs. eval-sdft",
        "eval-vanilla − eval-sdft",
        "paired bootstrap 95% interval",
        "- drift: ",
        "- gsm8k: ",
    ] {
        assert!(report.contains(want), "report lacks {want}:\n{report}");
    }
    // Against its seed a tuned model's drift is its own, not a contest the seed
    // can win; the seed is called the seed.
    assert!(
        report
            .contains("- drift: eval-vanilla has drifted from the seed: eval-vanilla − eval-seed")
            || report.contains("- drift: no measurable drift of eval-vanilla from the seed"),
        "{report}"
    );
    assert!(!report.contains("eval-seed drifts"), "{report}");
    // The alpaca task has no benchmark of its own: no task gain to plot (not the
    // first benchmark standing in for it).
    assert!(!report.contains("Task gain vs. forgetting"), "{report}");
    // The seed compared with itself has drifted by exactly nothing.
    let seed = read_json(&run.join("eval-seed/results.json"));
    let drift = seed["benchmarks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["benchmark"] == "drift")
        .unwrap();
    assert_eq!(drift["metrics"]["kl"]["value"], 0.0);
    let tuned = read_json(&run.join("eval-vanilla/results.json"));
    let drift = tuned["benchmarks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["benchmark"] == "drift")
        .unwrap();
    assert!(drift["metrics"]["kl"]["value"].as_f64().unwrap() > 0.0);
    same_provenance_everywhere(&run, &data.join("train.json"));
    // Trained twice with the same recipe on different responses: different adapters.
    let a = std::fs::read(run.join("train-vanilla/adapter/adapter_model.safetensors")).unwrap();
    let b = std::fs::read(run.join("train-sdft/adapter/adapter_model.safetensors")).unwrap();
    assert_ne!(a, b);

    // A second run changes nothing.
    let o = pipeline(&config, &data, &run).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("up to date, skipped").count(), 6, "{err}");
    assert_eq!(
        std::fs::read(run.join("train-vanilla/adapter/adapter_model.safetensors")).unwrap(),
        a
    );

    // Killed while training, then resumed with the same command.
    let run2 = dir.path().join("run2");
    let mut child = pipeline(&config, &data, &run2)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let training = std::fs::read_to_string(run2.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|m| m["stages"]["train-vanilla"]["status"] == "running");
        if training && run2.join("train-vanilla/checkpoints").is_dir() {
            break;
        }
        assert!(start.elapsed().as_secs() < 300, "training never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The pipeline and its stage child share the group made for the pipeline.
    // (Not `/usr/bin/kill -KILL -PGID`: procps-ng 4.0.2 misreads that and signals
    // every process.)
    let pgid = child.id() as libc::pid_t;
    assert!(pgid > 1);
    // SAFETY: signals the process group created for this child only.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0);
    child.wait().unwrap();
    let o = pipeline(&config, &data, &run2).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("train-vanilla: resuming the interrupted stage"),
        "{err}"
    );
    assert!(err.contains("eval-seed: up to date, skipped"), "{err}");
    assert!(manifest(&run2)["stages"]
        .as_object()
        .unwrap()
        .values()
        .all(|s| s["status"] == "done"));
    // The resumed training reaches the uninterrupted run's adapter (same seed).
    assert_eq!(
        std::fs::read(run2.join("train-vanilla/adapter/adapter_model.safetensors")).unwrap(),
        a
    );
    // The run's data and adapters for other engines, by the issue's commands:
    // model, template and prompt format come from the distillation's summary
    // and the adapter's config.
    let sdft = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_sdft"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let export = dir.path().join("export");
    let distilled = run2.join("distill/distilled.parquet");
    for column in ["response", "output"] {
        sdft(&[
            "data",
            "export",
            "--format",
            "trl",
            "--input",
            distilled.to_str().unwrap(),
            "--column",
            column,
            "--output",
            export.to_str().unwrap(),
        ]);
        let m = read_json(&export.join(format!("sdft-{column}.export.json")));
        assert_eq!(
            (m["rows"].as_u64(), m["template"].as_str()),
            (Some(24), Some("alpaca"))
        );
    }
    let gguf = dir.path().join("sdft.gguf");
    sdft(&[
        "model",
        "export-lora",
        "--adapter",
        run2.join("train-sdft/adapter").to_str().unwrap(),
        "--output",
        gguf.to_str().unwrap(),
    ]);
    assert!(!sdft_model::gguf::GgufFile::open(&gguf)
        .unwrap()
        .tensors()
        .is_empty());
}

/// Every shipped config parses, and every stage command it makes is one the stage
/// accepts (checked by clap: the command line with `--help` appended).
#[test]
fn shipped_configs_make_valid_stage_commands() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-model");
    sdft_model::fixture::write_tiny_model(&model, 3).unwrap();
    // A chat template, for the configs that run in the `chat` prompt format.
    std::fs::write(
        model.join("chat_template.jinja"),
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in [
        "gsm8k_train.json",
        "openfunction_train.json",
        "alpaca_train.json",
        "dolly_train.json",
        "lima_train.json",
    ] {
        sdft_train::fixture::write_tiny_dataset(&data.join(f), 4, 1).unwrap();
    }
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&configs).unwrap() {
        let config = entry.unwrap().path();
        if config.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        n += 1;
        let o = pipeline(&config, &data, &dir.path().join("run"))
            .arg("--model")
            .arg(&model)
            .arg("--dry-run")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            config.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let plan = String::from_utf8(o.stdout).unwrap();
        // eval-seed, distill, and a train and an eval stage per arm (two or more).
        assert!(plan.lines().count() >= 6, "{plan}");
        for line in plan.lines() {
            let (stage, cmd) = line.split_once(": sdft ").unwrap();
            let mut args: Vec<&str> = cmd.split(' ').collect();
            args.push("--help");
            let o = Command::new(env!("CARGO_BIN_EXE_sdft"))
                .args(&args)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{}: stage {stage}: {}",
                config.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    assert!(n >= 6, "the demo and the five paper configs");
    // A dry run writes nothing: not even the run folder.
    assert!(
        !dir.path().join("run").exists(),
        "--dry-run created the run folder"
    );
}

/// `[[arm]]` tables: an arm with its own LoRA recipe and an on-policy arm beside
/// vanilla, without the SDFT arm (so without a distill stage); each arm trained
/// and evaluated, the report comparing every arm with the seed and with the
/// baseline, with per-item flips; `--arms` keeps a subset; `--dry-run` writes
/// nothing.
#[test]
fn arms_train_evaluate_and_report_each() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen("seed = 7\n", "seed = 7\nbaseline = \"vanilla\"\n", 1)
        .replace("measure_gap = true\n", "")
        + r#"
[[arm]]
name = "vanilla"
objective = "sft"
data = "original"

[[arm]]
name = "vanilla-r4"
objective = "sft"
data = "original"
lora_rank = 4
lora_alpha = 8

[[arm]]
name = "op"
objective = "on-policy"
rollouts_every = 0
max_new_tokens = 4
"#;
    std::fs::write(&config, text).unwrap();
    let data = dir.path().join("data");
    let run = dir.path().join("run");
    let o = pipeline(&config, &data, &run)
        .args(["--arms", "vanilla,op", "--dry-run"])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names: Vec<&str> = plan.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "eval-seed",
            "train-vanilla",
            "train-op",
            "eval-vanilla",
            "eval-op"
        ]
    );
    assert!(plan.contains("--objective on-policy"), "{plan}");
    assert!(
        plan.contains("--teacher-template alpaca_distill_using"),
        "{plan}"
    );
    assert!(!run.exists(), "--dry-run writes nothing");
    let o = pipeline(&config, &data, &run)
        .args(["--arms", "op"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("baseline = \"vanilla\" names no arm"), "{err}");

    let o = pipeline(&config, &data, &run).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        !run.join("distill").exists(),
        "no arm reads distilled answers"
    );
    let stages = manifest(&run)["stages"].as_object().unwrap().clone();
    let mut names: Vec<&String> = stages.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "eval-op",
            "eval-seed",
            "eval-vanilla",
            "eval-vanilla-r4",
            "train-op",
            "train-vanilla",
            "train-vanilla-r4"
        ]
    );
    let r4 = read_json(&run.join("train-vanilla-r4/adapter/adapter_config.json"));
    assert_eq!(r4["r"], 4);
    assert!(run.join("train-op/on_policy.csv").is_file());
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for want in [
        "## Arms",
        "Baseline: `vanilla`",
        "| op | on-policy self-distillation (Shenfeld et al. 2026) |",
        "`lora_rank = 4`",
        "## eval-op vs. eval-seed",
        "## eval-vanilla-r4 vs. eval-seed",
        "## eval-vanilla vs. eval-op",
        "## eval-vanilla vs. eval-vanilla-r4",
        "Per-item flips, eval-seed → eval-op",
        "| train-op |",
    ] {
        assert!(report.contains(want), "report lacks {want}:\n{report}");
    }
}

/// `--dry-run` checks every stage's flags with the stage's own parser.
#[test]
fn dry_run_checks_stage_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    for (bad, stage) in [
        ("batch_size = 8", "batch_size = 0"),
        ("epochs = 3", "epochs = 3\nno_such_flag = 1"),
    ]
    .map(|(from, to)| (text.replacen(from, to, 1), from))
    {
        std::fs::write(&config, &bad).unwrap();
        let o = pipeline(&config, &dir.path().join("data"), &dir.path().join("run"))
            .arg("--dry-run")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{stage}: {err}");
        assert!(err.contains("its flags are not valid"), "{err}");
        assert!(o.stdout.is_empty(), "nothing planned");
    }
}

/// `[eval] generator` with `served_adapters`: every evaluation goes to the one
/// server, each arm's with its adapter's local copy and its served name, the
/// seed's with none (`--dry-run` shows and checks the stage commands).
#[test]
fn evaluations_on_a_server_name_each_arms_served_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "benchmarks = [\"gsm8k\", \"advbench\", \"drift\", \"gsm8k_ll\"]",
            "benchmarks = [\"gsm8k\", \"advbench\"]\ngenerator = \"openai:http://127.0.0.1:9/v1\"\nserved_model = \"tiny\"\nserved_adapters = { vanilla = \"0\", sdft = \"1\" }",
        );
    std::fs::write(&config, text).unwrap();
    let o = pipeline(&config, &dir.path().join("data"), &dir.path().join("run"))
        .arg("--dry-run")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = |stage: &str| -> String {
        let head = format!("{stage}: ");
        out.lines()
            .find(|l| l.starts_with(&head))
            .unwrap_or_default()
            .to_string()
    };
    let (seed, vanilla, sdft) = (line("eval-seed"), line("eval-vanilla"), line("eval-sdft"));
    for l in [&seed, &vanilla, &sdft] {
        assert!(
            l.contains("--generator openai:http://127.0.0.1:9/v1")
                && l.contains("--served-model tiny"),
            "{out}"
        );
    }
    assert!(
        !seed.contains("--served-adapter") && !seed.contains("--adapter"),
        "{seed}"
    );
    assert!(
        vanilla.contains("train-vanilla/adapter") && vanilla.contains("--served-adapter 0"),
        "{vanilla}"
    );
    assert!(
        sdft.contains("train-sdft/adapter") && sdft.contains("--served-adapter 1"),
        "{sdft}"
    );
}
