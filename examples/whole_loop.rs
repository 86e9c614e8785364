//! The whole SDFT loop on a tiny model, as a library user writes it: distill the
//! task data with the seed model, LoRA-train on the rewrites, evaluate seed and
//! tuned model on the same multiple-choice set.

use sdft_core::SamplingBuilder;
use sdft_data::Template;
use sdft_distill::{DataSource, DistillConfig, DistillJob, Task};
use sdft_eval::{bench::Benchmark, job::EvalJob, run::EvalOptions, run::NoProgress};
use sdft_model::ModelSpec;
use sdft_openai::GeneratorSpec;
use sdft_train::{ResponseColumn, TrainConfig, TrainJob, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let seed = ModelSpec::new(sdft_examples::setup(root, 16)?.display().to_string());
    let engine = GeneratorSpec::local(seed.clone(), 8);

    // 1. Distill: the seed model rewrites every reference answer in its own words.
    let config = DistillConfig::builder(Task::parse("custom")?)
        .sampling(SamplingBuilder::default().max_new_tokens(8).build()?)
        .build()?;
    let job = DistillJob::new(
        config,
        DataSource::new(root.join("data.json")),
        root.join("d.parquet"),
    );
    let open = job.open(&engine.settings()?, &seed.path()?)?;
    let distilled = open.run(Some(&mut engine.open()?), &mut ())?.summary;
    println!(
        "distill: {} of {} rewrites kept",
        distilled.kept, distilled.rows
    );

    // 2. Train: LoRA on the distilled responses.
    let config = TrainConfig::default()
        .with_lora(4, 8.0, &["all-linear"])
        .with_batch(4, 1);
    let train = TrainJob {
        model: seed.path()?,
        data: root.join("d.parquet"),
        template: Template::load("alpaca")?,
        response_column: ResponseColumn::Response,
        output: root.join("train"),
        config: config.with_learning_rate(1e-3).with_steps(1, None),
        resume: false,
        overwrite: false,
        teacher_template: None,
    };
    let trained = Trainer::from_job(train)?.run(&mut |_, _| {})?;
    println!(
        "train: {} steps, loss {:?}",
        trained.steps, trained.last_loss
    );

    // 3. Evaluate the seed and the tuned model on the same rows.
    let mc = Benchmark::parse_list(&format!("mc:{}", root.join("mc.jsonl").display()))?;
    let tuned = seed.clone().adapter(Some(trained.adapter_dir));
    for (name, model) in [("seed", seed), ("sdft", tuned)] {
        let job = EvalJob::new(mc.clone(), EvalOptions::new(root.join(name), root));
        let mut engine = GeneratorSpec::local(model, 8).open()?;
        for r in job.run(&mut engine, None, &mut NoProgress, &mut |_, _| {})? {
            println!("{name}: {}", sdft_eval::report::summary_line(&r));
        }
    }
    Ok(())
}
