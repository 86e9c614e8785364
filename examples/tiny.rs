//! What the examples share: a tiny random model and task data in its vocabulary
//! (the test fixture: a 2-layer Llama over the words `w3 .. w63`), and a
//! multiple-choice set in the same words, written under a folder.

use std::path::{Path, PathBuf};

pub use sdft_model::fixture::write_tiny_model;
pub use sdft_train::fixture::write_tiny_dataset;

/// `root/model` (the tiny model), `root/data.json` (`rows` instruction/output
/// pairs) and `root/mc.jsonl` (eight two-choice questions); returns the model's path.
pub fn setup(root: &Path, rows: usize) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let model = root.join("model");
    write_tiny_model(&model, 7)?;
    write_tiny_dataset(&root.join("data.json"), rows, 7)?;
    let mc: Vec<String> = (0..8)
        .map(|i| {
            serde_json::json!({
                "id": format!("q{i}"),
                "question": format!("w{} w{}", 3 + i, 20 + i),
                "choices": [format!("w{}", 30 + i), format!("w{}", 40 + i)],
                "answer": i % 2,
            })
            .to_string()
        })
        .collect();
    std::fs::write(root.join("mc.jsonl"), mc.join("\n"))?;
    Ok(model)
}
