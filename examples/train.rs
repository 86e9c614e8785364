//! LoRA fine-tuning (`sdft train`) as a library call: the paper's recipe scaled
//! down, on the tiny model, writing a PEFT adapter.

use sdft_data::Template;
use sdft_train::{ResponseColumn, TrainConfig, TrainJob, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let model = sdft_examples::setup(dir.path(), 16)?;
    let job = TrainJob {
        model,
        data: dir.path().join("data.json"),
        template: Template::load("alpaca")?,
        response_column: ResponseColumn::Output,
        output: dir.path().join("run"),
        config: TrainConfig::default()
            .with_lora(4, 8.0, &["all-linear"])
            .with_learning_rate(1e-3)
            .with_batch(4, 1)
            .with_steps(2, None),
        resume: false,
        overwrite: false,
        teacher_template: None,
    };
    let mut trainer = Trainer::from_job(job)?;
    let s = trainer.run(&mut |m, _| println!("step {} loss {:.4}", m.step, m.loss))?;
    println!("{} steps, adapter in {}", s.steps, s.adapter_dir.display());
    Ok(())
}
