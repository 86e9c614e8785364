//! # sdft-train
//!
//! LoRA fine-tuning for sdft-rs. The loss is the causal-LM cross-entropy on response
//! tokens (plus EOS) with prompt tokens masked, as in the paper
//! (`docs/train.md`, "What is trained, and how").
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
//! ```
//! use sdft_train::schedule::LrSchedule;
//! use sdft_train::truncate::budget;
//! use sdft_train::TrainConfig;
//!
//! // LLaMA-Factory's infer_max_len: the budget is split in proportion to lengths.
//! assert_eq!(budget(1500, 500, 1024), (768, 256));
//! let s = LrSchedule::cosine(1e-4, 0, 100);
//! assert_eq!(s.lr(0), 1e-4);
//! assert!(s.lr(100).abs() < 1e-12);
//! let c = TrainConfig::default();
//! assert_eq!((c.lora_rank, c.batch_size * c.grad_accum, c.epochs), (8, 8, 5));
//! ```

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
pub mod optim;
pub mod schedule;
pub mod step;
pub mod trainer;
pub mod truncate;

pub use config::TrainConfig;
pub use data::{ResponseColumn, Sequence};
pub use error::{Error, Result};
pub use trainer::{TrainBackend, TrainJob, TrainSummary, Trainer};
