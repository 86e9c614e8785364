//! [`DistillJob`]: the whole `sdft distill` stage as a library call. It reads the
//! task data ([`DataSource`]), keeps one shard, opens the output under the reuse
//! rule ([`DistillRun`]), distills the rows not yet done on any
//! [`Generator`], optionally measures the distribution gap on a [`Scorer`]
//! ([`measure_gap`]), writes the summary and exports the training data in the
//! input's own layout.
//!
//! ```no_run
//! use sdft_core::{provenance::Settings, GenerateScore};
//! use sdft_distill::{DataSource, DistillConfig, DistillJob, Task};
//!
//! /// Distills GSM8K with `model` (the in-process engine, a served model, ...).
//! fn distill(model: &mut dyn GenerateScore) -> sdft_distill::Result<()> {
//!     let config = DistillConfig::builder(Task::Gsm8k).build()?;
//!     let data = DataSource::new("gsm8k_train.json");
//!     let job = DistillJob::new(config, data, "out/distilled.parquet");
//!     // The model's settings (hashes, dtype) and path, e.g. from sdft_model::ModelSpec.
//!     let open = job.open(&Settings::new().with("model_sha256", "…"), "model".as_ref())?;
//!     let report = open.run(Some(model), &mut ())?;
//!     println!("{}", report.summary.render());
//!     Ok(())
//! }
//! ```
//!
//! `examples/distill.rs` runs it on a tiny model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sdft_core::provenance::Settings;
use sdft_core::{Example, GenerateScore};
use sdft_data::{ColumnMap, Dataset, ReadOptions, ResolvedColumns, RowIssue, Template};

use crate::{
    measure_gap, run_settings, DistillConfig, DistillRun, DistilledRow, Manifest, Result, Shard,
    Summary,
};

/// Where a stage's examples come from: the file, its column mapping and a row limit.
#[derive(Debug, Clone)]
pub struct DataSource {
    pub path: PathBuf,
    pub columns: ColumnMap,
    /// Only the first N rows (before sharding).
    pub limit: Option<usize>,
}

/// The examples read, with what the schema check dropped.
#[derive(Debug, Clone)]
pub struct SourceRows {
    pub examples: Vec<Example>,
    /// Rows that fail the schema check (not distilled).
    pub dropped: Vec<RowIssue>,
    pub rows_total: usize,
    /// How the file's columns map onto example fields (for the export).
    pub mapping: ResolvedColumns,
}

impl DataSource {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataSource {
            path: path.into(),
            columns: ColumnMap::default(),
            limit: None,
        }
    }

    pub fn columns(mut self, columns: ColumnMap) -> Self {
        self.columns = columns;
        self
    }

    pub fn limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit;
        self
    }

    /// Reads the file (JSON, JSONL, CSV or Parquet) and keeps the first `limit` rows.
    pub fn read(&self) -> Result<SourceRows> {
        let ds = Dataset::read(
            &self.path,
            &ReadOptions::new().columns(self.columns.clone()),
        )?;
        let Dataset {
            mut examples,
            report,
        } = ds;
        if let Some(n) = self.limit {
            examples.truncate(n);
        }
        Ok(SourceRows {
            examples,
            dropped: report.dropped,
            rows_total: report.rows_total,
            mapping: report.mapping,
        })
    }
}

/// Callbacks of a running [`DistillJob`] (progress bars, logs); all optional.
pub trait DistillProgress {
    /// A row was distilled (kept or fallen back).
    fn row(&mut self, _row: &DistilledRow) {}
    /// Gap measurement: `done` of `total` scoring requests.
    fn gap(&mut self, _done: usize, _total: usize) {}
}

impl DistillProgress for () {}

/// The distillation stage on one output (see the module docs).
pub struct DistillJob {
    pub config: DistillConfig,
    pub data: DataSource,
    /// Only the rows of this shard (by stable id).
    pub shard: Option<Shard>,
    /// `OUT.parquet`.
    pub output: PathBuf,
    /// Redo an output made with other settings instead of refusing.
    pub overwrite: bool,
    /// Measure the distribution gap under this training template (already in the
    /// run's prompt format).
    pub gap_template: Option<Template>,
    /// Requests per scoring call of the gap measurement.
    pub gap_batch: usize,
    /// Also write the training data in the input's layout to this file.
    pub export: Option<PathBuf>,
}

impl DistillJob {
    pub fn new(config: DistillConfig, data: DataSource, output: impl Into<PathBuf>) -> Self {
        DistillJob {
            config,
            data,
            shard: None,
            output: output.into(),
            overwrite: false,
            gap_template: None,
            gap_batch: 64,
            export: None,
        }
    }

    pub fn shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Measure the gap under `template`, `batch` requests per scoring call.
    pub fn measure_gap(mut self, template: Option<Template>, batch: usize) -> Self {
        self.gap_template = template;
        self.gap_batch = batch.max(1);
        self
    }

    pub fn export(mut self, path: Option<PathBuf>) -> Self {
        self.export = path;
        self
    }

    /// Reads the data, keeps the shard and opens the output: `model_settings` are
    /// the generating model's ([`run_settings`] adds the run's own), `model_path`
    /// the file or directory whose hash the manifest records.
    pub fn open(self, model_settings: &Settings, model_path: &Path) -> Result<OpenDistill> {
        let wall = Instant::now();
        let mut rows = self.data.read()?;
        if let Some(s) = self.shard {
            rows.examples.retain(|e| s.contains(&e.id));
            tracing::info!(shard = %s, rows = rows.examples.len(), "shard");
        }
        let mut manifest = Manifest::new(&self.config, &self.data.path, model_path)?;
        manifest.shard = self.shard.map(|s| s.to_string());
        manifest.limit = self.data.limit;
        let settings = run_settings(model_settings, &manifest);
        let examples = std::mem::take(&mut rows.examples);
        let run = DistillRun::open(
            self.config,
            examples,
            &self.output,
            manifest,
            &settings,
            self.overwrite,
        )?;
        Ok(OpenDistill {
            output: self.output,
            gap: self.gap_template.map(|t| (t, self.gap_batch)),
            export: self.export,
            run,
            source: rows,
            wall,
        })
    }
}

/// An opened [`DistillJob`]: what is already done, and whether a model is needed.
pub struct OpenDistill {
    output: PathBuf,
    gap: Option<(Template, usize)>,
    export: Option<PathBuf>,
    run: DistillRun,
    source: SourceRows,
    wall: Instant,
}

/// What a finished [`DistillJob`] made.
pub struct DistillReport {
    /// Every row of the output, in source order.
    pub rows: Vec<DistilledRow>,
    pub summary: Summary,
    /// The summary file (`OUT.parquet.summary.json`).
    pub summary_path: PathBuf,
}

impl OpenDistill {
    /// The rows read, with those the schema check dropped.
    pub fn source(&self) -> &SourceRows {
        &self.source
    }

    /// Rows found done from an earlier run with the same settings.
    pub fn resumed(&self) -> usize {
        self.run.resumed()
    }

    /// Rows still to distill.
    pub fn todo(&self) -> usize {
        self.run.todo()
    }

    /// Whether [`Self::run`] needs a model (rows left to generate, or a gap to
    /// measure); without one it only writes the output.
    pub fn needs_model(&self) -> bool {
        self.run.needs_generator() || self.gap.is_some()
    }

    /// Distills the rows left, measures the gap, writes the summary and the export.
    pub fn run(
        mut self,
        mut model: Option<&mut dyn GenerateScore>,
        progress: &mut dyn DistillProgress,
    ) -> Result<DistillReport> {
        let generator = model.as_deref_mut().map(|m| m.as_generator());
        let out = self.run.run(generator, &mut |r| progress.row(r))?;
        let (rows, mut summary) = (out.rows, out.summary);
        if let Some((t, batch)) = &self.gap {
            let Some(m) = model else {
                return Err(crate::Error::Config {
                    key: "measure_gap".into(),
                    message: "measuring the gap needs a model to score with".into(),
                });
            };
            let gap = measure_gap(m.as_scorer(), t, &rows, *batch, &mut |d, n| {
                progress.gap(d, n)
            })?;
            summary.gap = Some(gap);
        }
        summary.wall_seconds = self.wall.elapsed().as_secs_f64();
        self.run.finish(&summary)?;
        if let Some(p) = &self.export {
            crate::export(p, &rows, &self.source.mapping)?;
            tracing::info!(path = %p.display(), "exported the training data");
        }
        Ok(DistillReport {
            rows,
            summary,
            summary_path: Summary::path_for(&self.output),
        })
    }
}
