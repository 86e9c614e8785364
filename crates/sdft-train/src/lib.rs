//! # sdft-train
//!
//! LoRA fine-tuning for sdft-rs. The loss is the causal-LM cross-entropy on response
//! tokens (plus EOS) with prompt tokens masked, as in the paper
//! (`../shared/docs/sdft-method.md` (a) step 3 and (d)).
//!
//! This crate currently provides the paper's sequence budgeting
//! ([`truncate::budget`]) and learning-rate schedule ([`schedule::LrSchedule`]).
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

pub mod schedule;
pub mod truncate;
