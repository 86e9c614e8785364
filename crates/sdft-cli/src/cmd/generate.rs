//! `sdft generate`: batched generation over prompts, resumable.
//!
//! Input rows (JSONL or Parquet) have `id` and either `prompt` (raw text, used as
//! is; with `--template`, the instruction of that template) or `messages` (a chat,
//! rendered with the model's chat template under `--chat`). Output rows have `id`,
//! `text`, `prompt_tokens`, `completion_tokens`, `finish_reason`.
//!
//! Progress goes to `OUT.partial.jsonl` as rows finish (one flushed line each); a
//! rerun of the same command skips the rows found there (a torn last line is
//! dropped). At the end the output is written in input order, atomically, and the
//! partial file removed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sdft_core::{Completion, Example, GenerationRequest, Prompt, PromptPiece, SamplingParams};
use sdft_data::parquet_io::{write_table, Column};
use sdft_data::{read_records, Format, Template};
use sdft_model::Engine;
use serde_json::{json, Value};

use super::model::LoadArgs;
use super::sampling::SamplingArgs;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// One prompt (raw text).
    #[arg(long, conflicts_with = "input", required_unless_present = "input")]
    prompt: Option<String>,
    /// JSONL or Parquet rows with `id` and `prompt` or `messages`.
    #[arg(long)]
    input: Option<PathBuf>,
    /// OUT.jsonl or OUT.parquet.
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
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Only the first N input rows.
    #[arg(long)]
    limit: Option<usize>,
}

struct Row {
    id: String,
    prompt: Option<String>,
    messages: Option<Vec<(String, String)>>,
}

fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let records = read_records(path, None)?;
    let mut rows = Vec::with_capacity(records.len());
    for (i, r) in records.rows.iter().enumerate() {
        let r = r
            .as_ref()
            .with_context(|| format!("{}: row {}: expected an object", path.display(), i + 1))?;
        let id = match r.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => format!("row-{}", i + 1),
        };
        let prompt = r.get("prompt").and_then(Value::as_str).map(str::to_string);
        let messages = match r.get("messages") {
            Some(Value::Array(ms)) => Some(
                ms.iter()
                    .map(|m| {
                        let role = m.get("role").and_then(Value::as_str);
                        let content = m.get("content").and_then(Value::as_str);
                        match (role, content) {
                            (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
                            _ => bail!("{}: row {}, column `messages`: expected objects with role and content strings", path.display(), i + 1),
                        }
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            _ => None,
        };
        if prompt.is_none() && messages.is_none() {
            bail!(
                "{}: row {}: expected a `prompt` string or a `messages` list",
                path.display(),
                i + 1
            );
        }
        rows.push(Row {
            id,
            prompt,
            messages,
        });
    }
    Ok(rows)
}

fn partial_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial.jsonl");
    output.with_file_name(name)
}

/// Rows already generated: from the partial file (dropping a torn last line) and
/// from a finished JSONL output.
fn load_done(output: &Path, partial: &Path) -> Result<HashMap<String, Value>> {
    let mut done = HashMap::new();
    for p in [output, partial] {
        if !p.is_file() || (p == output && Format::from_path(output).ok() != Some(Format::Jsonl)) {
            continue;
        }
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let complete = if text.ends_with('\n') {
            text.as_str()
        } else {
            text.rsplit_once('\n').map(|x| x.0).unwrap_or("")
        };
        if p == partial && complete.len() != text.len() {
            std::fs::write(
                p,
                if complete.is_empty() {
                    String::new()
                } else {
                    format!("{complete}\n")
                },
            )?;
        }
        for line in complete.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{}: invalid line {line:?}", p.display()))?;
            if let Some(id) = v.get("id").and_then(Value::as_str) {
                done.insert(id.to_string(), v);
            }
        }
    }
    Ok(done)
}

pub fn run(args: GenerateArgs) -> Result<ExitCode> {
    let params: SamplingParams = args.sampling.params()?;
    let mut rows = match (&args.prompt, &args.input) {
        (Some(p), _) => vec![Row {
            id: "prompt".into(),
            prompt: Some(p.clone()),
            messages: None,
        }],
        (None, Some(path)) => read_rows(path)?,
        (None, None) => bail!("give --prompt TEXT or --input FILE"),
    };
    if let Some(n) = args.limit {
        rows.truncate(n);
    }
    let template = args.template.as_deref().map(Template::load).transpose()?;
    let model = args.load.load()?;
    let template = template
        .map(|t| super::prompt_format::apply(t, args.prompt_format, &model.tokenizer))
        .transpose()?;
    let chat = if args.chat {
        let t = model
            .tokenizer
            .chat_template()
            .context("--chat: the model has no chat template")?;
        Some(sdft_data::ChatTemplate::new(t)?)
    } else {
        None
    };
    let bos = model
        .tokenizer
        .bos_id()
        .and_then(|i| model.tokenizer.id_to_token(i))
        .unwrap_or_default();
    let eos = model
        .tokenizer
        .eos_id()
        .and_then(|i| model.tokenizer.id_to_token(i))
        .unwrap_or_default();
    let add_bos = model.tokenizer.add_bos();
    let mut requests = Vec::with_capacity(rows.len());
    for row in &rows {
        let prompt = if let Some(c) = &chat {
            let messages = match (&row.messages, &row.prompt) {
                (Some(m), _) => m.clone(),
                (None, Some(p)) => vec![("user".to_string(), p.clone())],
                (None, None) => unreachable!("checked when reading"),
            };
            Prompt::raw(
                c.render(&messages, true, &bos, &eos)
                    .with_context(|| format!("row {}", row.id))?,
            )
        } else {
            let text = row
                .prompt
                .clone()
                .with_context(|| format!("row {}: `messages` needs --chat", row.id))?;
            match &template {
                Some(t) => t.render_prompt(&Example::new(text, ""))?,
                None if add_bos => Prompt::new(vec![PromptPiece::Bos, PromptPiece::Text(text)]),
                None => Prompt::raw(text),
            }
        };
        requests.push(GenerationRequest::new(row.id.clone(), prompt));
    }
    let mut params = params;
    if let Some(t) = &template {
        params.stop.extend(t.stop.iter().cloned());
    }
    let partial = partial_path(&args.output);
    let done = load_done(&args.output, &partial)?;
    let todo: Vec<usize> = (0..requests.len())
        .filter(|i| !done.contains_key(&requests[*i].id))
        .collect();
    if !done.is_empty() {
        eprintln!(
            "resuming: {} of {} rows already generated",
            requests.len() - todo.len(),
            requests.len()
        );
    }
    let engine = Engine::new(model, args.batch_size);
    let todo_reqs: Vec<GenerationRequest> = todo.iter().map(|i| requests[*i].clone()).collect();
    let prompt_tokens: Vec<usize> = todo_reqs
        .iter()
        .map(|r| engine.model.encode_pieces(&r.prompt).map(|v| v.len()))
        .collect::<sdft_model::Result<_>>()?;
    let bar = ProgressBar::new(todo_reqs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} rows  {msg}  [{elapsed_precise}, ETA {eta}]",
        )
        .expect("valid template"),
    );
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)
        .with_context(|| format!("opening {}", partial.display()))?;
    let start = std::time::Instant::now();
    let mut tokens = 0usize;
    let mut write_err: Option<std::io::Error> = None;
    let mut new_rows: HashMap<String, Value> = HashMap::new();
    engine.generate_with(&todo_reqs, &params, &mut |i, c: &Completion| {
        let row = json!({
            "id": todo_reqs[i].id,
            "text": c.text,
            "prompt_tokens": prompt_tokens[i],
            "completion_tokens": c.tokens,
            "finish_reason": c.finish_reason.as_str(),
        });
        if let Err(e) = writeln!(file, "{row}").and_then(|_| file.flush()) {
            write_err.get_or_insert(e);
        }
        new_rows.insert(todo_reqs[i].id.clone(), row);
        tokens += c.tokens;
        bar.set_message(format!(
            "{:.1} tokens/s",
            tokens as f64 / start.elapsed().as_secs_f64()
        ));
        bar.inc(1);
    })?;
    bar.finish();
    if let Some(e) = write_err {
        return Err(e).with_context(|| format!("writing {}", partial.display()));
    }
    let all: Vec<Value> = requests
        .iter()
        .map(|r| {
            new_rows
                .remove(&r.id)
                .or_else(|| done.get(&r.id).cloned())
                .expect("every row generated")
        })
        .collect();
    write_output(&args.output, &all)?;
    let _ = std::fs::remove_file(&partial);
    eprintln!(
        "wrote {} rows to {} ({} new tokens in {:.1}s)",
        all.len(),
        args.output.display(),
        tokens,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_output(path: &Path, rows: &[Value]) -> Result<()> {
    match Format::from_path(path)? {
        Format::Parquet => {
            let s = |k: &str| {
                Column::Str(
                    rows.iter()
                        .map(|r| r[k].as_str().unwrap_or("").to_string())
                        .collect(),
                )
            };
            let n =
                |k: &str| Column::Int(rows.iter().map(|r| r[k].as_i64().unwrap_or(0)).collect());
            write_table(
                path,
                vec![
                    ("id", s("id")),
                    ("text", s("text")),
                    ("prompt_tokens", n("prompt_tokens")),
                    ("completion_tokens", n("completion_tokens")),
                    ("finish_reason", s("finish_reason")),
                ],
            )?;
        }
        Format::Jsonl => {
            let mut text = String::new();
            for r in rows {
                text.push_str(&r.to_string());
                text.push('\n');
            }
            sdft_data::atomic::write_bytes(path, text.as_bytes())?;
        }
        other => bail!(
            "{}: output format {other}: expected .jsonl or .parquet",
            path.display()
        ),
    }
    Ok(())
}
