//! `sdft generate`: batched generation over prompts, resumable. Argument mapping
//! and progress only: the stage is `sdft_data::generations::run_generate`.
//!
//! Input rows (JSONL or Parquet) have `id` and either `prompt` (raw text, used as
//! is; with `--template`, the instruction of that template) or `messages` (a chat,
//! rendered with the model's chat template under `--chat`). Output rows have `id`,
//! `text`, `prompt_tokens`, `completion_tokens`, `finish_reason`.
//!
//! Progress goes to `OUT.partial.jsonl` as rows finish (one flushed line each); the
//! settings that make the output to `OUT.settings.json`. A rerun with the same
//! settings skips the rows already made (a finished output is left as it is); with
//! other settings it is refused (naming them) unless `--overwrite`. At the end the
//! output is written in input order, atomically, and the partial file removed.

use std::path::PathBuf;
use std::process::ExitCode;

use super::model::LoadArgs;
use super::sampling::{positive, SamplingArgs};
use super::served::GeneratorArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use sdft_core::provenance::{content_hash, sha256_hex};
use sdft_data::generations::{
    generation_format, read_prompt_rows, run_generate, GenerateJob, PromptRow, PromptStyle,
};
use sdft_data::Template;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    generator: GeneratorArgs,
    /// One prompt (raw text).
    #[arg(long, conflicts_with = "input", required_unless_present = "input")]
    prompt: Option<String>,
    /// JSONL or Parquet rows with `id` and `prompt` or `messages`.
    #[arg(long)]
    input: Option<PathBuf>,
    /// OUT.jsonl or OUT.parquet (its directory is created).
    #[arg(long)]
    output: PathBuf,
    /// Wrap each `prompt` as the instruction of a template (preset or TOML file).
    #[arg(long, conflicts_with = "chat")]
    template: Option<String>,
    /// Render `messages` (or a `prompt` as one user message) with the model's chat template.
    #[arg(long)]
    chat: bool,
    /// With `--template`: `paper` (the preset byte-exact) or `chat` (the preset's
    /// parts through the model's chat template); default `chat` when the model has one.
    #[arg(long, value_name = "paper|chat", requires = "template")]
    prompt_format: Option<sdft_data::PromptFormat>,
    /// Rows generated together.
    #[arg(long, default_value_t = 8, value_parser = positive)]
    batch_size: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Only the first N input rows.
    #[arg(long)]
    limit: Option<usize>,
    /// Redo an output made with other settings instead of refusing.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: GenerateArgs) -> Result<ExitCode> {
    generation_format(&args.output)?;
    let params = args.sampling.params()?;
    let (mut rows, input_sha256) = match (&args.prompt, &args.input) {
        (Some(p), _) => (
            vec![PromptRow {
                id: "prompt".into(),
                prompt: Some(p.clone()),
                messages: None,
            }],
            sha256_hex(p.as_bytes()),
        ),
        (None, Some(path)) => (read_prompt_rows(path)?, content_hash(path)?),
        (None, None) => bail!("give --prompt TEXT or --input FILE"),
    };
    if let Some(n) = args.limit {
        rows.truncate(n);
    }
    let template = args.template.as_deref().map(Template::load).transpose()?;
    let spec = args.generator.spec(&args.load, args.batch_size)?;
    let settings = spec
        .settings()?
        .with("input_sha256", input_sha256)
        .with("limit", args.limit);
    let tokenizer = spec.model.tokenizer()?;
    let style = match (args.chat, template) {
        (true, _) => {
            let chat = tokenizer
                .chat_format()?
                .context("--chat: the model has no chat template")?;
            PromptStyle::Chat(chat)
        }
        (false, Some(t)) => {
            PromptStyle::Template(tokenizer.apply_prompt_format(t, args.prompt_format)?)
        }
        (false, None) => PromptStyle::Raw {
            bos: tokenizer.add_bos(),
        },
    };
    let mut backend = spec.open()?;
    let bar = super::progress::bar(rows.len(), "rows");
    let start = std::time::Instant::now();
    let job = GenerateJob {
        rows,
        style,
        params,
        output: args.output.clone(),
        settings,
        overwrite: args.overwrite,
        chunk: 256.max(args.batch_size),
    };
    let s = run_generate(&mut backend, job, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    if s.up_to_date {
        eprintln!(
            "{}: up to date ({} rows made with these settings)",
            args.output.display(),
            s.rows
        );
        return Ok(ExitCode::SUCCESS);
    }
    if s.resumed > 0 {
        eprintln!(
            "resumed: {} of {} rows were already generated",
            s.resumed, s.rows
        );
    }
    eprintln!(
        "wrote {} rows to {} ({} new tokens in {:.1}s)",
        s.rows,
        args.output.display(),
        s.tokens,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
