//! [`Pipeline`]: an experiment prepared from its TOML ([`Experiment`]): the run
//! folder, the manifest with the run's provenance, and the stages in order
//! ([`Stage`], each an `sdft` command line with its inputs), which
//! [`Pipeline::run`] runs as child processes of the `sdft` binary and then
//! reports on.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sdft_core::provenance::{content_hash, sha256_hex};
use sdft_distill::Task;
use sdft_model::ModelSpec;

use crate::arms::{Arm, ArmObjective};
use crate::config::{table_flags, Experiment};
use crate::stage::{RunManifest, Stage};
use crate::{Error, Result};

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

/// What a pipeline run is asked to do, besides its config.
#[derive(Debug, Clone, Default)]
pub struct PipelineOptions {
    /// The experiment TOML.
    pub config: PathBuf,
    /// The run folder (default: `runs/<name>`).
    pub output: Option<PathBuf>,
    /// Where data files named in the config are looked up (default:
    /// `$SDFT_SHARED/data/sdft`).
    pub data_dir: Option<PathBuf>,
    /// A model instead of the config's.
    pub model: Option<String>,
    /// Only these arms of the config (by name), e.g. to leave out a costly one.
    pub arms: Option<Vec<String>>,
}

/// A prepared experiment (see the module docs).
pub struct Pipeline {
    pub experiment: Experiment,
    pub stages: Vec<Stage>,
    pub manifest: RunManifest,
    pub run_dir: PathBuf,
    pub task: Task,
    started: Instant,
}

/// What [`Pipeline::run`] left: the stages still to run, or the report.
#[derive(Debug, Clone)]
pub struct PipelineOutcome {
    /// Stages not done yet (run them, e.g. one per command).
    pub pending: Vec<String>,
    /// `RUN/report.md`, once every stage is done.
    pub report: Option<PathBuf>,
    /// Views the report left out, and why.
    pub notes: Vec<sdft_eval::report::ReportNote>,
}

impl Pipeline {
    /// Reads the config, records the run's provenance in the manifest and lays
    /// out the stages; writes nothing ([`Pipeline::run`] creates the run folder).
    pub fn prepare(o: &PipelineOptions) -> Result<Pipeline> {
        let started = Instant::now();
        let mut exp = Experiment::load(&o.config)?;
        if let Some(m) = &o.model {
            exp.model = m.clone();
        }
        if let Some(names) = &o.arms {
            exp.select_arms(&o.config, names)?;
        }
        let config_dir = o
            .config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let data_dir = sdft_core::provenance::data_dir(o.data_dir.as_deref());
        let data = exp.data_path(&config_dir, data_dir.as_deref())?;
        let run_dir = o
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&exp.name));
        let task = Task::parse(&exp.data.task)?;
        let train_template = exp
            .train
            .get("template")
            .and_then(|v| v.as_str())
            .unwrap_or(task.train_template())
            .to_string();
        let model_path = sdft_assets::resolve_model(&exp.model)?;
        let mut manifest = RunManifest::load(&run_dir).unwrap_or_default();
        let config_text =
            std::fs::read_to_string(&o.config).map_err(|e| Error::io(&o.config, e))?;
        manifest.name = exp.name.clone();
        manifest.crate_version = sdft_core::VERSION.into();
        manifest.git_commit = option_env!("SDFT_GIT_COMMIT").map(str::to_string);
        manifest.config = serde_json::to_value(&exp).expect("an experiment serializes");
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
            &manifest.distill_template,
            data_dir.as_deref(),
        )?;
        Ok(Pipeline {
            experiment: exp,
            stages,
            manifest,
            run_dir,
            task,
            started,
        })
    }

    /// Checks that every name in `only` is a stage.
    pub fn check_stages(&self, only: &[String]) -> Result<()> {
        for name in only {
            if !self.stages.iter().any(|s| s.name == *name) {
                let names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
                return Err(Error::UnknownStage {
                    name: name.clone(),
                    known: names.join(", "),
                });
            }
        }
        Ok(())
    }

    /// The plan printed before a run: each stage with `done` or its expected time.
    pub fn plan_lines(&self, only: Option<&[String]>) -> Vec<String> {
        plan_lines(&self.experiment, &self.stages, &self.manifest, only)
    }

    /// Runs the stages (only those in `only`, when given) as `exe ARGS`, skipping
    /// finished ones and resuming an interrupted one, then writes the report once
    /// every stage is done. `log` gets the stages' progress lines.
    pub fn run(
        &mut self,
        exe: &Path,
        only: Option<&[String]>,
        log: &mut dyn FnMut(&str),
    ) -> Result<PipelineOutcome> {
        std::fs::create_dir_all(&self.run_dir).map_err(|e| Error::io(&self.run_dir, e))?;
        self.manifest.save(&self.run_dir)?;
        for s in &self.stages {
            if only.is_some_and(|o| !o.contains(&s.name)) {
                continue;
            }
            s.run(exe, &self.run_dir, &mut self.manifest, log)?;
        }
        let pending: Vec<String> = self
            .stages
            .iter()
            .filter(|s| !s.is_done(&self.manifest))
            .map(|s| s.name.clone())
            .collect();
        if !pending.is_empty() {
            return Ok(PipelineOutcome {
                pending,
                report: None,
                notes: Vec::new(),
            });
        }
        let wall = self.started.elapsed().as_secs_f64();
        let names: Vec<String> = self.stages.iter().map(|s| s.name.clone()).collect();
        let notes = crate::report::write(
            &self.run_dir,
            &self.manifest,
            self.task.name(),
            &self.experiment.trained_arms(),
            &self.experiment.baseline_arm(),
            &names,
            wall,
        )?;
        Ok(PipelineOutcome {
            pending,
            report: Some(self.run_dir.join("report.md")),
            notes,
        })
    }
}

/// Each stage with its expected time, before anything runs: `done` for a stage
/// this run folder has finished with the same inputs, else the time measured in
/// the config's `[plan]` (a reference run on a named machine).
fn plan_lines(
    exp: &Experiment,
    stages: &[Stage],
    manifest: &RunManifest,
    only: Option<&[String]>,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut total = 0.0;
    let mut known = true;
    let source = if exp.plan.measured.is_empty() {
        "no measured times in the config's [plan]".to_string()
    } else {
        format!("times measured {}", exp.plan.measured)
    };
    lines.push(format!("plan ({source}):"));
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
        lines.push(format!("  {:<14} {what}", s.name));
    }
    if total > 0.0 {
        lines.push(format!(
            "  total          about {:.0} min{}",
            total / 60.0,
            if known {
                ""
            } else {
                " (plus the stages without an estimate)"
            }
        ));
    }
    lines
}

/// What each stage's prompts are made of: the prompt format its table asks for
/// (or the model's default) and the hash of the template it renders.
fn prompt_records(
    exp: &Experiment,
    model: &Path,
    manifest: &RunManifest,
) -> Result<std::collections::BTreeMap<String, serde_json::Value>> {
    let tok = ModelSpec::new(model.display().to_string()).tokenizer()?;
    let requested = |t: &toml::Table| -> Result<Option<sdft_data::PromptFormat>> {
        let format = t.get("prompt_format").and_then(|v| v.as_str());
        Ok(format.map(str::parse).transpose()?)
    };
    let mut out = std::collections::BTreeMap::new();
    for (stage, table, name) in [
        ("distill", &exp.distill, &manifest.distill_template),
        ("train", &exp.train, &manifest.train_template),
    ] {
        let t = tok.apply_prompt_format(sdft_data::Template::load(name)?, requested(table)?)?;
        out.insert(
            stage.to_string(),
            serde_json::json!({"template": t.name, "prompt_format": t.prompt_format(), "template_hash": t.template_hash()}),
        );
    }
    let eval = tok.resolve_prompt_format(requested(&exp.eval)?);
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
    distill_template: &str,
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
    let mut eval_table = exp.eval.clone();
    eval_table.remove("served_adapters");
    let eval_flags = table_flags(&eval_table)?;
    // Checked when the config was loaded.
    let served = exp.served_adapters(Path::new("experiment config"))?;
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
            if let Some(served) = served.as_ref().and_then(|s| s.get(name)) {
                args.extend([os("--served-adapter"), os(served)]);
            }
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
    let train = |arm: &Arm| -> Result<Stage> {
        let out = run.join(format!("train-{}", arm.name));
        let (data, column, inputs) = if arm.uses_distilled() {
            (
                distilled.as_path(),
                "response",
                vec![model.to_path_buf(), distilled.clone()],
            )
        } else {
            (
                data,
                "output",
                vec![model.to_path_buf(), data.to_path_buf()],
            )
        };
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
        let mut table = train_table.clone();
        for (k, v) in &arm.train {
            table.insert(k.replace('-', "_"), v.clone());
        }
        if arm.objective == ArmObjective::OnPolicy {
            args.extend([os("--objective"), os("on-policy")]);
            // The teacher sees the demonstration through the distill stage's
            // template unless the arm names its own.
            table
                .entry("teacher_template")
                .or_insert_with(|| toml::Value::String(distill_template.into()));
        }
        args.extend(table_flags(&table)?);
        args.extend([os("--output"), os(&out)]);
        Ok(Stage {
            name: format!("train-{}", arm.name),
            args,
            inputs,
            output: out,
            resume_args: vec![os("--resume")],
        })
    };
    let arms = exp.trained_arms();
    let mut stages = vec![eval("seed", None)];
    if arms.iter().any(Arm::uses_distilled) {
        stages.push(Stage {
            name: "distill".into(),
            args: distill_args,
            inputs: vec![model.to_path_buf(), data.to_path_buf()],
            output: distill_dir,
            resume_args: Vec::new(),
        });
    }
    for arm in &arms {
        stages.push(train(arm)?);
    }
    for arm in &arms {
        let adapter = run.join(format!("train-{}", arm.name)).join("adapter");
        stages.push(eval(&arm.name, Some(adapter)));
    }
    Ok(stages)
}
