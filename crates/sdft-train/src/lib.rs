//! # sdft-train
//!
//! LoRA fine-tuning for sdft-rs. The loss is the causal-LM cross-entropy on response
//! tokens (plus EOS) with prompt tokens masked, as in the paper
//! (`docs/train.md`, "What is trained, and how"), or with an `[on_policy]`
//! config the on-policy self-distillation objective of Shenfeld et al. 2026
//! ([`on_policy`]: the student's own answers, a divergence from the seed shown
//! the demonstration).
//!
//! - [`Trainer`] runs a [`TrainJob`]: data read by `sdft-data`, rendered with a
//!   template, tokenized piecewise and truncated with the paper's rule
//!   ([`truncate::budget`]); LoRA adapters (`sdft_model::model::lora`) on a frozen
//!   base under autodiff; AdamW ([`optim`]) with global-norm clipping, gradient
//!   accumulation and a warmup + decay schedule ([`schedule::LrSchedule`]);
//!   checkpoints that resume bit-exactly ([`checkpoint`]); `metrics.csv` and
//!   `loss.svg` ([`metrics`]); the final adapter in PEFT's layout.
//! - [`TrainConfig`] holds every key, with the paper's recipe as defaults, and reads
//!   TOML.
//! - Data parallel: [`Trainer::with_devices`] (or the `devices` key through
//!   [`Trainer::from_job`], parsed by [`devices`]) keeps one replica per device,
//!   runs each step's micro-batches on them concurrently and sums the LoRA
//!   gradients on the host; the result is the one-device run's.
//!
//! A run is a [`TrainJob`]: what to train on (model, data, template, target
//! column), where the run goes, and a [`TrainConfig`] built from the paper's
//! recipe, a TOML file ([`TrainConfig::load`]) or both, key by key. Named values
//! parse as config files and flags spell them ([`names`]).
//!
//! ```
//! use std::path::PathBuf;
//!
//! use sdft_data::Template;
//! use sdft_train::schedule::Decay;
//! use sdft_train::{ResponseColumn, TrainConfig, TrainJob, TrainSummary, Trainer};
//!
//! // The paper's recipe with LoRA r 16 on every projection, 1 epoch of
//! // 4 x 2 examples per step, checked for this build before a model loads.
//! let mut config = TrainConfig::default()
//!     .with_lora(16, 32.0, &["all-linear"])
//!     .with_learning_rate(2e-4)
//!     .with_batch(4, 2)
//!     .with_steps(1, None)
//!     .with_seed(7);
//! config.lr_scheduler = "linear".parse::<Decay>()?;
//! config.validate_for_build()?;
//! let schedule = config.schedule(100);
//! assert_eq!((schedule.lr(0), schedule.lr(50)), (2e-4, 1e-4));
//! assert!(TrainConfig::default().with_lora(8, 16.0, &["wq"]).validate().is_err());
//!
//! let job = TrainJob {
//!     model: PathBuf::from("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
//!     data: PathBuf::from("data/train.jsonl"),
//!     template: Template::load("alpaca")?,
//!     response_column: "response".parse::<ResponseColumn>()?,
//!     output: PathBuf::from("runs/smollm2-r16"),
//!     config,
//!     resume: false,
//!     overwrite: false,
//!     teacher_template: None,
//! };
//!
//! // Training it: the data read and tokenized, the model loaded with fresh
//! // adapters (or the latest checkpoint with `resume`), then the steps, writing
//! // metrics.csv, checkpoints and finally adapter/ under `job.output`.
//! fn train(job: TrainJob) -> sdft_train::Result<TrainSummary> {
//!     let mut trainer = Trainer::from_job(job)?;
//!     println!("{} examples, {} steps", trainer.n_examples(), trainer.total_steps());
//!     trainer.run(&mut |m, total| println!("step {}/{total}: loss {:.4}", m.step, m.loss))
//! }
//! # let _ = (train, job);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The truncation rule and the schedule on their own:
//!
//! ```
//! use sdft_train::schedule::LrSchedule;
//! use sdft_train::truncate::budget;
//!
//! // LLaMA-Factory's infer_max_len: the budget is split in proportion to lengths.
//! assert_eq!(budget(1500, 500, 1024), (768, 256));
//! let s = LrSchedule::cosine(1e-4, 0, 100);
//! assert_eq!(s.lr(0), 1e-4);
//! assert!(s.lr(100).abs() < 1e-12);
//! ```

pub mod adapters;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod devices;
mod error;
/// A tiny dataset and job for tests (the `fixture` feature).
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
pub mod loss;
pub mod metrics;
pub mod names;
pub mod on_policy;
pub mod optim;
pub mod schedule;
pub mod step;
pub mod trainer;
pub mod truncate;

pub use config::TrainConfig;
pub use data::{ResponseColumn, Sequence};
pub use error::{Error, Result};
pub use trainer::{TrainBackend, TrainJob, TrainSummary, Trainer};
