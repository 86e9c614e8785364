//! [`DistillRun`]: the distillation stage on one output, as `sdft distill` runs it
//! and as an embedding tool can: it locks the output, applies the reuse rule of
//! [`sdft_core::provenance`] (the settings in `OUT.parquet.settings.json`: the same
//! settings resume an unfinished run or reuse a finished one, `overwrite` redoes it,
//! anything else is refused naming the differing settings), distills the rows not
//! yet done through a [`ChunkStore`], writes the output in source order and returns
//! the [`Summary`]. [`merge_settings`] is the same rule for `distill merge`: every
//! shard must have been made with the same settings.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sdft_core::provenance::{self, sidecar, OutputLock, Reuse, Settings};
use sdft_core::{Example, Generator};
use sdft_data::Template;

use crate::{
    ChunkStore, DistillConfig, DistilledRow, Distiller, Error, Manifest, Result, Summary, Task,
    TaskFile,
};

/// The rewriting template of a run: an explicit preset, else a template TOML file,
/// else the task file's `template`; `None` leaves the task's own default to
/// [`crate::DistillConfigBuilder::build`].
pub fn choose_template(
    preset: Option<&str>,
    file: Option<&Path>,
    task_file: Option<&TaskFile>,
) -> Result<Option<Template>> {
    Ok(
        match (preset, file, task_file.and_then(|f| f.template.as_deref())) {
            (Some(t), _, _) => Some(Template::load(t)?),
            (None, Some(p), _) => Some(Template::from_toml_file(p)?),
            (None, None, Some(t)) => Some(Template::load(t)?),
            (None, None, None) => None,
        },
    )
}

/// The settings file of a distillation output.
pub fn settings_path(output: &Path) -> PathBuf {
    sidecar(output, "settings.json")
}

/// The settings of a run: `base` (model and adapter hashes, set by the caller)
/// plus the manifest's task, template, template hash, checks, sampling, data hash,
/// shard, limit and empty-row policy.
pub fn run_settings(base: &Settings, m: &Manifest) -> Settings {
    base.clone()
        .with("crate_version", &m.crate_version)
        .with("task", &m.task)
        .with("template", &m.template)
        .with("template_sha256", &m.template_sha256)
        .with("prompt_format", m.prompt_format.to_string())
        .with("template_hash", &m.template_hash)
        .with("checks", &m.checks)
        .with("sampling", &m.sampling)
        .with("data_sha256", &m.data_sha256)
        .with("model_sha256", &m.model_sha256)
        .with("shard", &m.shard)
        .with("limit", m.limit)
        .with("on_empty", &m.on_empty)
}

/// One distillation run on one output (see the module docs).
pub struct DistillRun {
    distiller: Distiller,
    examples: Vec<Example>,
    output: PathBuf,
    manifest: Manifest,
    store: Option<ChunkStore>,
    done: HashMap<String, DistilledRow>,
    todo: Vec<Example>,
    _lock: OutputLock,
}

/// What [`DistillRun::run`] returns.
pub struct Outcome {
    /// Every row of the output, in source order.
    pub rows: Vec<DistilledRow>,
    /// Counts, throughput and the manifest (timing of this invocation; no gap).
    pub summary: Summary,
}

impl DistillRun {
    /// Opens `output` (`OUT.parquet`) for the run of `examples` (already limited and
    /// sharded) with `config`; `settings` are [`run_settings`]. Fails at once when
    /// another process writes the output, or when the output was made with other
    /// settings and `overwrite` is not set.
    pub fn open(
        config: DistillConfig,
        examples: Vec<Example>,
        output: &Path,
        manifest: Manifest,
        settings: &Settings,
        overwrite: bool,
    ) -> Result<DistillRun> {
        let ext = output.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !ext.eq_ignore_ascii_case("parquet") {
            return Err(Error::Output {
                path: output.to_path_buf(),
                message: "expected an output ending in .parquet (the distilled rows are Parquet; \
                          --export FILE.json or .jsonl also writes them in the input's layout)"
                    .into(),
            });
        }
        let chunks = ChunkStore::dir_for(output);
        let summary = Summary::path_for(output);
        let opened =
            provenance::open_output(output, &settings_path(output), settings, overwrite, || {
                provenance::remove_path(&chunks)?;
                provenance::remove_path(&summary)?;
                provenance::remove_path(output)
            })?;
        if opened.reuse == Reuse::Continue {
            tracing::info!(output = %output.display(), "same settings: continuing");
        }
        let (store, done) = ChunkStore::open(output)?;
        let todo: Vec<Example> = examples
            .iter()
            .filter(|e| !done.contains_key(&e.id))
            .cloned()
            .collect();
        Ok(DistillRun {
            distiller: Distiller::new(config),
            examples,
            output: output.to_path_buf(),
            manifest,
            store: Some(store),
            done,
            todo,
            _lock: opened.lock,
        })
    }

    /// Rows found done by an earlier run with the same settings.
    pub fn resumed(&self) -> usize {
        self.examples.len() - self.todo.len()
    }

    /// Rows still to distill.
    pub fn todo(&self) -> usize {
        self.todo.len()
    }

    /// Whether a generator is needed: some remaining row has text to rewrite.
    pub fn needs_generator(&self) -> bool {
        self.todo
            .iter()
            .any(|e| Distiller::empty_reason(e).is_none())
    }

    /// Distills the remaining rows (`progress` per row), writes the output in
    /// source order and returns it with its summary. `generator` may be `None` when
    /// [`DistillRun::needs_generator`] is false.
    pub fn run(
        &mut self,
        generator: Option<&mut dyn Generator>,
        progress: &mut dyn FnMut(&DistilledRow),
    ) -> Result<Outcome> {
        let wall = Instant::now();
        let mut store = self.store.take().ok_or_else(|| Error::Output {
            path: self.output.clone(),
            message: "the run was already finished".into(),
        })?;
        let mut all = std::mem::take(&mut self.done);
        let mut stats = crate::RunStats::default();
        if !self.todo.is_empty() {
            let mut on_row = |r: &DistilledRow| {
                all.insert(r.id.clone(), r.clone());
                progress(r);
            };
            stats = match generator {
                Some(g) => self.distiller.run(g, &self.todo, &mut store, &mut on_row)?,
                None => self
                    .distiller
                    .run(&mut NoModel, &self.todo, &mut store, &mut on_row)?,
            };
        }
        let skipped: HashSet<&str> = stats.skipped.iter().map(|s| s.id.as_str()).collect();
        let order: Vec<String> = self
            .examples
            .iter()
            .map(|e| e.id.clone())
            .filter(|id| !skipped.contains(id.as_str()))
            .collect();
        let rows = store.finish(&self.output, &order, &mut all)?;
        let mut summary = Summary::from_rows(&self.output, &rows, self.manifest.clone());
        summary.skipped = stats.skipped.clone();
        summary.resumed_rows = self.resumed();
        summary.tokens_this_run = stats.tokens_generated;
        summary.generation_seconds = stats.seconds;
        summary.tokens_per_second = if stats.seconds > 0.0 {
            stats.tokens_generated as f64 / stats.seconds
        } else {
            0.0
        };
        summary.wall_seconds = wall.elapsed().as_secs_f64();
        Ok(Outcome { rows, summary })
    }

    /// Saves the summary (`OUT.summary.json`) and releases the output.
    pub fn finish(self, summary: &Summary) -> Result<()> {
        summary.save(&Summary::path_for(&self.output))
    }
}

/// Stands in for the model when every remaining row is empty (nothing to generate).
struct NoModel;

impl Generator for NoModel {
    fn generate_each(
        &mut self,
        requests: &[sdft_core::GenerationRequest],
        _: &sdft_core::SamplingParams,
        _: &mut dyn FnMut(usize, &sdft_core::Completion),
    ) -> sdft_core::Result<Vec<sdft_core::Completion>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        Err(sdft_core::Error::backend(
            "generation",
            "no generator given (rows to rewrite remained)",
        ))
    }
}

/// The settings every shard was made with (their `shard` setting aside): an error
/// naming the shard and each differing setting when they do not agree, or when a
/// shard has no recorded settings.
pub fn merge_settings(shards: &[PathBuf]) -> Result<Settings> {
    let mut agreed: Option<(Settings, &PathBuf)> = None;
    for shard in shards {
        let path = settings_path(shard);
        let mut s = Settings::read(&path)?.ok_or_else(|| Error::Merge {
            message: format!(
                "{}: no settings recorded ({} is missing): merge shards made by `sdft distill --shard`",
                shard.display(),
                path.display()
            ),
        })?;
        s.remove("shard");
        match &agreed {
            None => agreed = Some((s, shard)),
            Some((first, first_path)) => {
                let diff = first.diff(&s);
                if !diff.is_empty() {
                    return Err(Error::Merge {
                        message: format!(
                            "{} was made with other settings than {}: {}",
                            shard.display(),
                            first_path.display(),
                            diff.iter()
                                .map(|d| d.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    });
                }
            }
        }
    }
    Ok(agreed.map(|a| a.0).unwrap_or_default())
}

/// A run's task, rewriting template and checks, chosen as `sdft distill` does:
/// the task named (a task file's `task` when the name is `custom`), the
/// template of [`choose_template`] or else the task's own, the task file's
/// checks or else the task's.
pub struct TaskSetup {
    pub task: Task,
    pub template: Template,
    pub checks: Vec<Box<dyn crate::Check>>,
}

impl TaskSetup {
    pub fn resolve(
        task: &str,
        template: Option<&str>,
        template_file: Option<&Path>,
        task_file: Option<&Path>,
    ) -> Result<TaskSetup> {
        let file = task_file.map(TaskFile::load).transpose()?;
        let name = file
            .as_ref()
            .and_then(|f| f.task.clone())
            .filter(|_| task == "custom")
            .unwrap_or_else(|| task.to_string());
        let task = Task::parse(&name)?;
        let template = match choose_template(template, template_file, file.as_ref())? {
            Some(t) => t,
            None => Template::load(task.distill_template())?,
        };
        let checks = match &file {
            Some(f) => f.build_checks(task)?,
            None => task.checks(),
        };
        Ok(TaskSetup {
            task,
            template,
            checks,
        })
    }
}
