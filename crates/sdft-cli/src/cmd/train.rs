//! `sdft train`: LoRA fine-tuning of a model on a dataset (see docs/train.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sdft_data::Template;
use sdft_model::assets;
use sdft_train::loss::LossNormalization;
use sdft_train::schedule::Decay;
use sdft_train::{ResponseColumn, TrainBackend, TrainConfig, TrainJob, Trainer};

/// `sdft train` arguments. Flags override the keys of `--config`; unset keys keep
/// the paper's recipe.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A .gguf file, an HF checkpoint directory, or a known name (smollm2-135m-instruct, qwen2.5-coder-0.5b-instruct).
    #[arg(long)]
    model: String,
    /// Training data: JSON, JSONL, CSV or Parquet (e.g. the output of `sdft distill`).
    #[arg(long, alias = "data", value_name = "FILE")]
    input: PathBuf,
    /// Map a column of `--input` onto an example field: COLUMN=FIELD (id, system,
    /// instruction, input, output, history, messages). Repeatable; with
    /// `--response-column output` only. The mapped rows are written beside the run
    /// folder (OUTPUT.input.jsonl), and training reads them from there.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    map: Vec<String>,
    /// Prompt template: a preset name (`sdft template list`) or a TOML file.
    #[arg(long)]
    template: String,
    /// `paper` (the preset byte-exact) or `chat` (through the model's chat
    /// template); default `chat` when the model has one.
    #[arg(long, value_name = "paper|chat")]
    prompt_format: Option<sdft_data::PromptFormat>,
    /// Column holding the training target: `response` (distillation output) or
    /// `output` (the dataset's own reference, detected by name).
    #[arg(long, default_value = "output")]
    response_column: ResponseColumn,
    /// Run directory: adapter/, checkpoints/, metrics.csv, loss.svg, run.json.
    #[arg(long)]
    output: PathBuf,
    /// TOML file of config keys (the flags' names with underscores).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from the latest checkpoint in --output.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start over: remove the earlier run in --output (adapter, checkpoints,
    /// metrics, recorded settings) before training.
    #[arg(long)]
    overwrite: bool,
    /// LoRA rank r [config default: 8].
    #[arg(long)]
    lora_rank: Option<usize>,
    /// LoRA scaling numerator [default: 16].
    #[arg(long)]
    lora_alpha: Option<f64>,
    /// Dropout on the adapter input [default: 0.1].
    #[arg(long)]
    lora_dropout: Option<f64>,
    /// Comma-separated PEFT names (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj) or all-linear.
    #[arg(long, value_delimiter = ',')]
    lora_targets: Option<Vec<String>>,
    /// Scale adapters by alpha/sqrt(r) (rsLoRA).
    #[arg(long)]
    use_rslora: bool,
    /// Peak learning rate [default: 1e-4].
    #[arg(long)]
    learning_rate: Option<f64>,
    /// constant, linear or cosine [default: cosine].
    #[arg(long)]
    lr_scheduler: Option<Decay>,
    /// Linear warmup steps [default: 0].
    #[arg(long)]
    warmup_steps: Option<usize>,
    /// Epochs [default: 5].
    #[arg(long)]
    epochs: Option<usize>,
    /// Stop after N optimizer steps (overrides --epochs).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Examples per micro-batch [default: 2].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Micro-batches per optimizer step [default: 4].
    #[arg(long)]
    grad_accum: Option<usize>,
    /// Token budget per example, split between prompt and response [default: 1024].
    #[arg(long)]
    cutoff_len: Option<usize>,
    /// Global gradient-norm clipping; 0 turns it off [default: 1.0].
    #[arg(long)]
    max_grad_norm: Option<f64>,
    /// AdamW decoupled weight decay [default: 0].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Checkpoint every N optimizer steps; 0: none [default: 1000].
    #[arg(long)]
    save_steps: Option<usize>,
    /// Seed of data order, LoRA init and dropout [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Group examples of similar length into micro-batches.
    #[arg(long)]
    group_by_length: bool,
    /// Train on the first N examples.
    #[arg(long)]
    limit: Option<usize>,
    /// Data parallel over these devices, one model replica each, comma-separated:
    /// cpu,cpu on a CPU build; cuda:0,cuda:1 on a `--features cuda` build
    /// [default: one replica on the build's default device].
    #[arg(long, value_delimiter = ',')]
    devices: Option<Vec<String>>,
    /// How a step's loss is normalised: `token` (over all target tokens of the
    /// step: today's transformers and TRL) or `micro-batch` (each micro-batch's
    /// mean, averaged over --grad-accum: transformers 4.34.1, the paper's stack)
    /// [default: token].
    #[arg(long, value_name = "token|micro-batch")]
    loss_normalization: Option<LossNormalization>,
    #[command(flatten)]
    objective: super::objective::ObjectiveArgs,
}

impl TrainArgs {
    /// The config: `--config`'s keys (or the defaults) with the flags set over
    /// them, checked for this build.
    fn config(&self) -> Result<TrainConfig> {
        let mut c = TrainConfig::load(self.config.as_deref())?;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = v; } )* };
        }
        set!(
            lora_rank,
            lora_alpha,
            lora_dropout,
            lora_targets,
            learning_rate,
            lr_scheduler,
            warmup_steps,
            epochs
        );
        set!(
            batch_size,
            grad_accum,
            cutoff_len,
            max_grad_norm,
            weight_decay,
            save_steps,
            seed,
            devices,
            loss_normalization
        );
        if let Some(v) = self.max_steps {
            c.max_steps = Some(v);
        }
        if let Some(v) = self.limit {
            c.limit = Some(v);
        }
        c.use_rslora |= self.use_rslora;
        c.group_by_length |= self.group_by_length;
        self.objective.apply(&mut c)?;
        c.validate_for_build()?;
        Ok(c)
    }
}

/// The file training reads: `--input` itself, or with `--map` its rows mapped
/// onto examples and written beside the run folder as `OUTPUT.input.jsonl` (the
/// same rows give the same file, so a resumed run finds the same data hash).
fn mapped_input(args: &TrainArgs) -> Result<PathBuf> {
    if args.map.is_empty() {
        return Ok(args.input.clone());
    }
    if args.response_column != ResponseColumn::Output {
        anyhow::bail!(
            "--map: only with --response-column output (a distilled file's columns are its own)"
        );
    }
    let options =
        sdft_data::ReadOptions::new().columns(sdft_data::ColumnMap::parse_specs(&args.map)?);
    let data = sdft_data::Dataset::read(&args.input, &options)?;
    for d in data.report.dropped.iter().take(20) {
        eprintln!("{}: skipped: {d}", args.input.display());
    }
    let mut name = args.output.file_name().unwrap_or_default().to_os_string();
    name.push(".input.jsonl");
    let path = args.output.with_file_name(name);
    sdft_data::write_examples(&path, &data.examples, Some(sdft_data::Format::Jsonl))?;
    tracing::info!(from = %args.input.display(), to = %path.display(), "mapped training rows");
    Ok(path)
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    let config = args.config()?;
    // What the progress bar calls the step's loss.
    let loss_name = if config.on_policy.is_some() {
        "kl"
    } else {
        "loss"
    };
    let tokenizer = sdft_model::ModelSpec::new(&args.model).tokenizer()?;
    let template =
        tokenizer.apply_prompt_format(Template::load(&args.template)?, args.prompt_format)?;
    let teacher_template = match config.on_policy {
        Some(_) => {
            let name = args.objective.teacher_template_name(&template);
            tracing::info!(teacher_template = %name, "on-policy teacher template");
            Some(tokenizer.apply_prompt_format(Template::load(&name)?, args.prompt_format)?)
        }
        None => None,
    };
    let job = TrainJob {
        model: assets::resolve_model(&args.model)?,
        data: mapped_input(&args)?,
        template,
        response_column: args.response_column,
        output: args.output.clone(),
        config,
        resume: args.resume,
        overwrite: args.overwrite,
        teacher_template,
    };
    let t0 = std::time::Instant::now();
    let mut trainer = Trainer::<TrainBackend>::from_job(job)?;
    tracing::info!(
        examples = trainer.n_examples(),
        replicas = trainer.n_replicas(),
        steps = trainer.total_steps(),
        start = trainer.start_step(),
        secs = t0.elapsed().as_secs_f32(),
        "training prepared"
    );
    let bar = ProgressBar::new(trainer.total_steps() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} step {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .expect("valid template"),
    );
    bar.set_position(trainer.start_step() as u64);
    bar.reset_eta();
    let started = std::time::Instant::now();
    let mut tokens = 0usize;
    let summary = trainer.run(&mut |m, _| {
        tokens += m.tokens;
        let rate = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{loss_name} {:.4} lr {:.2e} {:.0} tok/s",
            m.loss, m.lr, rate
        ));
        bar.set_position(m.step as u64);
    })?;
    bar.finish();
    eprintln!(
        "trained {} steps: loss {} -> {}, {:.0} tokens/s; adapter in {}",
        summary.steps,
        summary.first_loss.map_or("-".into(), |l| format!("{l:.4}")),
        summary.last_loss.map_or("-".into(), |l| format!("{l:.4}")),
        summary.tokens_per_sec,
        summary.adapter_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
