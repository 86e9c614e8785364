//! Batched, resumable generation (`sdft generate`) as a library call: prompts
//! through a template on the in-process engine, written to JSONL.

use sdft_core::SamplingBuilder;
use sdft_data::generations::{run_generate, GenerateJob, PromptRow, PromptStyle};
use sdft_data::Template;
use sdft_model::ModelSpec;
use sdft_openai::GeneratorSpec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let model = ModelSpec::new(sdft_examples::setup(dir.path(), 4)?.display().to_string());
    let rows = (0..4)
        .map(|i| PromptRow {
            id: format!("p{i}"),
            prompt: Some(format!("w{} w{} w{}", 5 + i, 9 + i, 12 + i)),
            messages: None,
        })
        .collect();
    let spec = GeneratorSpec::local(model.clone(), 4);
    let job = GenerateJob {
        rows,
        style: PromptStyle::Template(Template::load("alpaca")?),
        params: SamplingBuilder::preset("greedy")
            .max_new_tokens(6)
            .build()?,
        output: dir.path().join("out.jsonl"),
        settings: spec.settings()?,
        overwrite: false,
        chunk: 16,
    };
    let summary = run_generate(&mut spec.open()?, job, &mut |_, _| {})?;
    println!("generated {} rows, {} tokens", summary.rows, summary.tokens);
    print!("{}", std::fs::read_to_string(dir.path().join("out.jsonl"))?);
    Ok(())
}
