//! A tiny dataset and training job on the tiny random model of
//! `sdft_model::fixture` (word-level vocabulary `w3 .. w63`), for tests, examples
//! and smoke runs of the trainer without downloaded files (compiled under the
//! `fixture` feature and in this crate's unit tests only). Deterministic in `seed`.

use std::path::Path;

use sdft_core::rng::SplitMix64;
use sdft_model::fixture::VOCAB;
use serde_json::json;

use crate::{Error, ResponseColumn, Result, TrainConfig, TrainJob};

/// A JSON dataset of `n` instruction/output rows in the fixture's vocabulary.
pub fn write_tiny_dataset(path: &Path, n: usize, seed: u64) -> Result<()> {
    let mut rng = SplitMix64::new(seed);
    let mut words = |k: usize| -> String {
        (0..k)
            .map(|_| format!("w{}", 3 + rng.below(VOCAB - 3)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rows: Vec<serde_json::Value> = (0..n)
        .map(|_| json!({"instruction": words(6), "output": words(5)}))
        .collect();
    let text = serde_json::to_string(&rows).expect("json");
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// A training job on the fixture files under `root` (`root/model` from
/// `sdft_model::fixture::write_tiny_model`, `root/data.json` from
/// [`write_tiny_dataset`]), with the `alpaca` template, writing to `root/out`.
pub fn tiny_job(root: &Path, out: &str, config: TrainConfig, resume: bool) -> TrainJob {
    TrainJob {
        model: root.join("model"),
        data: root.join("data.json"),
        template: sdft_data::Template::preset("alpaca").expect("the alpaca preset exists"),
        response_column: ResponseColumn::Output,
        output: root.join(out),
        config,
        resume,
        overwrite: false,
        teacher_template: None,
    }
}
