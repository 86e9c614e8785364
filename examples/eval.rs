//! An evaluation suite (`sdft eval run`) as a library call: a multiple-choice
//! set scored by log-likelihood, as lm-eval scores ARC, resumable in a run folder.

use sdft_eval::bench::Benchmark;
use sdft_eval::job::{model_info, EvalJob};
use sdft_eval::run::{EvalOptions, NoProgress};
use sdft_model::ModelSpec;
use sdft_openai::GeneratorSpec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = sdft_examples::setup(dir.path(), 4)?.display().to_string();
    let spec = GeneratorSpec::local(ModelSpec::new(&path), 8);
    let mc = format!("mc:{}", dir.path().join("mc.jsonl").display());
    let mut opts = EvalOptions::new(dir.path().join("eval"), dir.path());
    opts.model = model_info(&path, None, &spec.settings()?);
    let job = EvalJob::new(Benchmark::parse_list(&mc)?, opts);
    let results = job.run(&mut spec.open()?, None, &mut NoProgress, &mut |_, _| {})?;
    for r in &results {
        println!("{}", sdft_eval::report::summary_line(r));
    }
    Ok(())
}
