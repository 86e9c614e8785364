//! `sdft pipeline --config experiment.toml`: the whole SDFT experiment.
//!
//! Stages, each a child `sdft` process writing into the run folder:
//! 1. `eval-seed`: evaluate the seed model;
//! 2. `distill`: self-distill the task data (`distill/distilled.parquet`);
//! 3. `train-vanilla` / `train-sdft`: the same LoRA recipe on the original and on
//!    the distilled responses;
//! 4. `eval-vanilla` / `eval-sdft`: evaluate both adapters;
//! 5. the report (`report.md`, plots) with the distillation summary, the
//!    distribution gap and the stage timings.
//!
//! `RUN/manifest.json` records the config, seed, templates, data, model and code
//! hashes and each stage's key and timing; a re-run skips finished stages whose
//! inputs did not change and resumes an interrupted one (see [`stage`]).
//!
//! Why child processes with flags made from the TOML ([`config`]) rather than
//! calls into the stage libraries: each stage then holds its model alone (the
//! memory of one model at a time, freed when the stage ends), a crash or kill
//! ends one stage without taking the run folder's other outputs with it, and a
//! stage's key is its exact command line, which anyone can rerun by hand. The
//! stages' logic is the libraries' (`sdft_distill::DistillRun`,
//! `sdft_train::Trainer`, `sdft_eval::run`); the flags are the mapping.

pub mod config;
mod report;
pub mod stage;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use sdft_distill::Task;

use config::{table_flags, Experiment};
use sdft_core::provenance::{content_hash, sha256_hex};
use stage::{RunManifest, Stage};

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The experiment TOML (see configs/ for the shipped ones).
    #[arg(long)]
    config: PathBuf,
    /// The run folder (default: runs/<name>).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Where data files named in the config are looked up (default:
    /// $SDFT_SHARED/data/sdft).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Use this model instead of the config's `model` (a known name, a .gguf file
    /// or an HF directory).
    #[arg(long)]
    model: Option<String>,
    /// Print the stages and their commands without running them.
    #[arg(long)]
    dry_run: bool,
    /// Run only these stages (comma-separated names: eval-seed, distill,
    /// train-vanilla, train-sdft, eval-vanilla, eval-sdft), e.g. one per command to
    /// keep each step short; the report is written once every stage is done.
    #[arg(long, value_name = "STAGE,...")]
    stages: Option<String>,
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

pub fn run(args: PipelineArgs) -> Result<ExitCode> {
    let wall = Instant::now();
    let mut exp = Experiment::load(&args.config)?;
    if let Some(m) = &args.model {
        exp.model = m.clone();
    }
    let config_dir = args
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let data_dir = sdft_core::provenance::data_dir(args.data_dir.as_deref());
    let data = exp.data_path(&config_dir, data_dir.as_deref())?;
    let run_dir = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&exp.name));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let task = Task::parse(&exp.data.task)?;
    let train_template = exp
        .train
        .get("template")
        .and_then(|v| v.as_str())
        .unwrap_or(task.train_template())
        .to_string();
    let model_path = sdft_assets::resolve_model(&exp.model)?;

    let mut manifest = RunManifest::load(&run_dir).unwrap_or_default();
    let config_text = std::fs::read_to_string(&args.config)?;
    manifest.name = exp.name.clone();
    manifest.crate_version = env!("CARGO_PKG_VERSION").into();
    manifest.git_commit = option_env!("SDFT_GIT_COMMIT").map(str::to_string);
    manifest.config = serde_json::to_value(&exp)?;
    manifest.config_sha256 = sha256_hex(config_text.as_bytes());
    manifest.seed = exp.seed;
    manifest.model = model_path.display().to_string();
    manifest.model_sha256 = content_hash(&model_path)?;
    manifest.data = data.clone();
    manifest.data_sha256 = content_hash(&data)?;
    manifest.distill_template = exp
        .distill
        .get("template")
        .and_then(|v| v.as_str())
        .unwrap_or(task.distill_template())
        .to_string();
    manifest.train_template = train_template.clone();
    manifest.prompts = prompt_records(&exp, &model_path, &manifest)?;

    let stages = plan(
        &exp,
        &data,
        &model_path,
        &run_dir,
        &train_template,
        data_dir.as_deref(),
    )?;
    // Every stage's flags are checked (by the stage's own parser) before anything
    // runs, so a bad key in the TOML fails at once, also under --dry-run.
    for s in &stages {
        let argv = std::iter::once(os("sdft")).chain(s.args.iter().cloned());
        if let Err(e) = <crate::Cli as clap::Parser>::try_parse_from(argv) {
            anyhow::bail!(
                "{}: stage {}: its flags are not valid:\n{}",
                args.config.display(),
                s.name,
                e.render()
            );
        }
    }
    let only: Option<Vec<String>> = args.stages.as_deref().map(|l| {
        l.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    });
    if let Some(only) = &only {
        for name in only {
            if !stages.iter().any(|s| s.name == *name) {
                let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
                anyhow::bail!(
                    "--stages {name}: no such stage (the stages: {})",
                    names.join(", ")
                );
            }
        }
    }
    print_plan(&exp, &stages, &manifest, only.as_deref());
    if args.dry_run {
        for s in &stages {
            let cmd: Vec<String> = s.args.iter().map(|a| a.to_string_lossy().into()).collect();
            println!("{}: sdft {}", s.name, cmd.join(" "));
        }
        return Ok(ExitCode::SUCCESS);
    }
    manifest.save(&run_dir)?;
    for s in &stages {
        if only.as_ref().is_some_and(|o| !o.contains(&s.name)) {
            continue;
        }
        s.run(&run_dir, &mut manifest)?;
    }
    let pending: Vec<&str> = stages
        .iter()
        .filter(|s| !s.is_done(&manifest))
        .map(|s| s.name.as_str())
        .collect();
    if !pending.is_empty() {
        println!(
            "stages not done yet: {} (run them, e.g. `--stages {}`; the report follows the last)",
            pending.join(", "),
            pending[0]
        );
        return Ok(ExitCode::SUCCESS);
    }
    report::write(
        &run_dir,
        &manifest,
        task.name(),
        wall.elapsed().as_secs_f64(),
    )?;
    println!("report: {}", run_dir.join("report.md").display());
    Ok(ExitCode::SUCCESS)
}

/// Prints each stage with its expected time before anything runs: `done` for a
/// stage this run folder has finished with the same inputs, else the time measured
/// in the config's `[plan]` (a reference run on a named machine).
fn print_plan(exp: &Experiment, stages: &[Stage], manifest: &RunManifest, only: Option<&[String]>) {
    let mut total = 0.0;
    let mut known = true;
    let source = if exp.plan.measured.is_empty() {
        "no measured times in the config's [plan]".to_string()
    } else {
        format!("times measured {}", exp.plan.measured)
    };
    eprintln!("plan ({source}):");
    for s in stages {
        let skipped = only.is_some_and(|o| !o.contains(&s.name));
        let what = if s.is_done(manifest) {
            "done".to_string()
        } else if skipped {
            "not in --stages".to_string()
        } else if let Some(secs) = exp.plan.seconds.get(&s.name) {
            total += secs;
            format!("about {:.0} min", secs / 60.0)
        } else {
            known = false;
            "no estimate".to_string()
        };
        eprintln!("  {:<14} {what}", s.name);
    }
    if total > 0.0 {
        eprintln!(
            "  total          about {:.0} min{}",
            total / 60.0,
            if known {
                ""
            } else {
                " (plus the stages without an estimate)"
            }
        );
    }
}

/// What each stage's prompts are made of: the prompt format its table asks for
/// (or the model's default) and the hash of the template it renders.
fn prompt_records(
    exp: &Experiment,
    model: &Path,
    manifest: &RunManifest,
) -> Result<std::collections::BTreeMap<String, serde_json::Value>> {
    let tok = super::prompt_format::tokenizer(&model.display().to_string())?;
    let requested = |t: &toml::Table| -> Result<Option<sdft_data::PromptFormat>> {
        t.get("prompt_format")
            .and_then(|v| v.as_str())
            .map(str::parse)
            .transpose()
            .map_err(Into::into)
    };
    let mut out = std::collections::BTreeMap::new();
    for (stage, table, name) in [
        ("distill", &exp.distill, &manifest.distill_template),
        ("train", &exp.train, &manifest.train_template),
    ] {
        let t =
            super::prompt_format::apply(sdft_data::Template::load(name)?, requested(table)?, &tok)?;
        out.insert(
            stage.to_string(),
            serde_json::json!({"template": t.name, "prompt_format": t.prompt_format(), "template_hash": t.template_hash()}),
        );
    }
    let eval =
        sdft_data::PromptFormat::resolve(requested(&exp.eval)?, tok.chat_template().is_some());
    out.insert("eval".into(), serde_json::json!({"prompt_format": eval}));
    Ok(out)
}

/// The stages of an experiment, in order.
fn plan(
    exp: &Experiment,
    data: &Path,
    model: &Path,
    run: &Path,
    train_template: &str,
    data_dir: Option<&Path>,
) -> Result<Vec<Stage>> {
    let model_arg = os(model);
    let seed = exp.seed.to_string();
    let limit: Vec<OsString> = exp
        .data
        .limit
        .map(|n| vec![os("--limit"), os(n.to_string())])
        .unwrap_or_default();
    let maps: Vec<OsString> = exp
        .data
        .map
        .iter()
        .flat_map(|m| [os("--map"), os(m)])
        .collect();
    let eval_flags = table_flags(&exp.eval)?;
    let measures_drift = exp
        .eval
        .get("benchmarks")
        .and_then(|b| b.as_array())
        .is_some_and(|b| b.iter().any(|x| x.as_str() == Some("drift")));
    let eval = |name: &str, adapter: Option<PathBuf>| -> Stage {
        let out = run.join(format!("eval-{name}"));
        let mut args = vec![os("eval"), os("run"), os("--model"), model_arg.clone()];
        let mut inputs = vec![model.to_path_buf()];
        if let Some(a) = adapter {
            args.extend([os("--adapter"), os(&a)]);
            inputs.push(a);
            if measures_drift {
                // Both adapters' drift is measured on the seed's responses of
                // eval-seed: generated once, not once per evaluation.
                let seed_run = run.join("eval-seed");
                args.extend([os("--drift-seed-run"), os(&seed_run)]);
                inputs.push(seed_run.join("drift.generations.jsonl"));
            }
        }
        if let Some(d) = data_dir {
            args.extend([os("--data-dir"), os(d)]);
        }
        args.extend([os("--seed"), os(&seed)]);
        args.extend(eval_flags.clone());
        args.extend([os("--output"), os(&out)]);
        Stage {
            name: format!("eval-{name}"),
            args,
            inputs,
            output: out,
            resume_args: Vec::new(),
        }
    };
    let distill_dir = run.join("distill");
    let distilled = distill_dir.join("distilled.parquet");
    let mut distill_args = vec![
        os("distill"),
        os("--model"),
        model_arg.clone(),
        os("--data"),
        os(data),
        os("--task"),
        os(&exp.data.task),
        os("--seed"),
        os(&seed),
    ];
    distill_args.extend(limit.clone());
    distill_args.extend(maps.clone());
    distill_args.extend(table_flags(&exp.distill)?);
    distill_args.extend([os("--output"), os(&distilled)]);
    let mut train_table = exp.train.clone();
    train_table.remove("template");
    let train_flags = table_flags(&train_table)?;
    let train = |name: &str, data: &Path, column: &str, inputs: Vec<PathBuf>| -> Stage {
        let out = run.join(format!("train-{name}"));
        let mut args = vec![
            os("train"),
            os("--model"),
            model_arg.clone(),
            os("--data"),
            os(data),
            os("--template"),
            os(train_template),
            os("--response-column"),
            os(column),
            os("--seed"),
            os(&seed),
        ];
        if column == "output" {
            args.extend(limit.clone());
            args.extend(maps.clone());
        }
        args.extend(train_flags.clone());
        args.extend([os("--output"), os(&out)]);
        Stage {
            name: format!("train-{name}"),
            args,
            inputs,
            output: out,
            resume_args: vec![os("--resume")],
        }
    };
    Ok(vec![
        eval("seed", None),
        Stage {
            name: "distill".into(),
            args: distill_args,
            inputs: vec![model.to_path_buf(), data.to_path_buf()],
            output: distill_dir,
            resume_args: Vec::new(),
        },
        train(
            "vanilla",
            data,
            "output",
            vec![model.to_path_buf(), data.to_path_buf()],
        ),
        train(
            "sdft",
            &distilled,
            "response",
            vec![model.to_path_buf(), distilled.clone()],
        ),
        eval("vanilla", Some(run.join("train-vanilla/adapter"))),
        eval("sdft", Some(run.join("train-sdft/adapter"))),
    ])
}
