//! Self-distillation (`sdft distill`) as a library call: the seed model rewrites
//! each reference answer; rewrites that fail a check fall back to the original.

use sdft_core::SamplingBuilder;
use sdft_distill::{DataSource, DistillConfig, DistillJob, Task};
use sdft_model::ModelSpec;
use sdft_openai::GeneratorSpec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let model = ModelSpec::new(sdft_examples::setup(dir.path(), 8)?.display().to_string());
    let config = DistillConfig::builder(Task::parse("custom")?)
        .sampling(SamplingBuilder::default().max_new_tokens(8).build()?)
        .build()?;
    let data = DataSource::new(dir.path().join("data.json"));
    let job = DistillJob::new(config, data, dir.path().join("distilled.parquet"))
        .export(Some(dir.path().join("distilled.json")));
    // The settings the output records come from the generator (model hash, dtype).
    let spec = GeneratorSpec::local(model.clone(), 8);
    let open = job.open(&spec.settings()?, &model.path()?)?;
    println!(
        "{} rows to distill, {} done before",
        open.todo(),
        open.resumed()
    );
    let report = open.run(Some(&mut spec.open()?), &mut ())?;
    print!("{}", report.summary.render());
    Ok(())
}
