//! # sdft-data
//!
//! Datasets and prompt templates for sdft-rs.
//!
//! - **Read** the paper's files exactly as they are (GSM8K `question/answer`,
//!   `instruction/input/output`, LIMA `history`, AdvBench CSV, AlpacaEval), Alpaca
//!   and ShareGPT/`messages` JSON or JSONL, CSV and Parquet, into
//!   [`sdft_core::Example`]s ([`Dataset::read`]). A [`ColumnMap`] maps other column
//!   names onto example fields.
//! - **Stable ids**: the dataset's own `id` column, else a content hash
//!   ([`content_id`]), so later stages join by id, never by position.
//! - **Schema checks** whose errors name the file, the 1-based row and the column and
//!   say what was expected; invalid rows are dropped and summarised
//!   ([`ReadReport`]), or fail the read in strict mode. Nothing panics on user data.
//! - **Parquet** in a documented schema ([`parquet_io`]), lossless round trip.
//! - **Templates** ([`Template`]): the paper's presets byte-exact, plus `llama2-chat`,
//!   `chatml` and user TOML files; they render an example into prompt pieces with
//!   BOS/EOS markers and a training target; in the `chat` [`PromptFormat`] the same
//!   preset's parts go through the model's own chat template ([`ChatFormat`]).
//!
//! ```
//! use sdft_data::{Dataset, ReadOptions, Template};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("math.json");
//! std::fs::write(&path, r#"[{"question": "What is 6 x 7?", "answer": "6 x 7 = 42.\nThe answer is 42."}]"#).unwrap();
//!
//! let data = Dataset::read(&path, &ReadOptions::default()).unwrap();
//! assert_eq!(data.len(), 1);
//! assert_eq!(data.report.mapping.instruction.as_deref(), Some("question"));
//!
//! let parquet = dir.path().join("math.parquet");
//! sdft_data::write_examples(&parquet, &data.examples, None).unwrap();
//! let back = Dataset::read(&parquet, &ReadOptions::default()).unwrap();
//! assert_eq!(back.examples, data.examples);
//!
//! let prompt = Template::preset("gsm8k").unwrap().render_prompt(&data.examples[0]).unwrap();
//! assert!(prompt.to_string().ends_with("[INST] What is 6 x 7? [/INST]"));
//! ```

pub mod atomic;
mod chat;
mod columns;
mod dataset;
mod error;
pub mod export;
mod format;
pub mod generations;
mod id;
pub mod inspect;
pub mod parquet_io;
mod records;
pub mod template;
mod write;

pub use chat::ChatTemplate;
pub use columns::{ColumnMap, Field, ResolvedColumns, FIELD_NAMES};
pub use dataset::{Dataset, ReadOptions, ReadReport, RowIssue};
pub use error::{Error, Result};
pub use format::Format;
pub use id::content_id;
pub use records::{read_records, value_kind, Record, Records};
pub use template::{ChatFormat, PromptFormat, RenderedTurn, SystemMessage, Template, PRESET_NAMES};
pub use write::{example_to_json, write_examples};
