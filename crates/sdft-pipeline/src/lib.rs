//! # sdft-pipeline
//!
//! The whole SDFT experiment from one TOML ([`Experiment`]), as `sdft pipeline`
//! runs it:
//!
//! 1. `eval-seed`: evaluate the seed model;
//! 2. `distill`: self-distill the task data (`distill/distilled.parquet`);
//! 3. `train-NAME` for each arm ([`arms`]): by default `train-vanilla` and
//!    `train-sdft`, the same LoRA recipe on the original and on the distilled
//!    responses; `[[arm]]` tables add others (another recipe, on-policy
//!    self-distillation);
//! 4. `eval-NAME`: evaluate each arm's adapter;
//! 5. the report (`report.md`, plots) with the paired comparisons (each arm with
//!    the seed and with the baseline arm, per-item flips), the distillation
//!    summary, the distribution gap and the stage timings.
//!
//! `RUN/manifest.json` ([`RunManifest`]) records the config, seed, templates,
//! data, model and code hashes and each stage's key and timing; a re-run skips
//! finished stages whose inputs did not change and resumes an interrupted one
//! ([`Stage`]).
//!
//! Why each stage is a child `sdft` process with flags made from the TOML rather
//! than a call into the stage libraries (`sdft_distill::DistillJob`,
//! `sdft_train::Trainer`, `sdft_eval::job::EvalJob`): each stage then holds its
//! model alone (the memory of one model at a time, freed when the stage ends), a
//! crash or kill ends one stage without taking the run folder's other outputs
//! with it, and a stage's key is its exact command line, which anyone can rerun by
//! hand. The stages' logic is the libraries'; the flags are the mapping.
//!
//! ```
//! use sdft_pipeline::config::table_flags;
//!
//! let table: toml::Table = toml::from_str("max_new_tokens = 64\nmeasure_gap = true").unwrap();
//! let flags: Vec<String> = table_flags(&table)?
//!     .into_iter()
//!     .map(|f| f.into_string().unwrap())
//!     .collect();
//! assert_eq!(flags, ["--max-new-tokens", "64", "--measure-gap"]);
//! # Ok::<(), sdft_pipeline::Error>(())
//! ```

pub mod arms;
pub mod config;
mod error;
mod pipeline;
mod report;
pub mod stage;

pub use arms::{Arm, ArmData, ArmObjective};
pub use config::Experiment;
pub use error::{Error, Result};
pub use pipeline::{Pipeline, PipelineOptions, PipelineOutcome};
pub use stage::{RunManifest, Stage, StageRecord};
