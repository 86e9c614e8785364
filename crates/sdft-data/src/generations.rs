//! Resumable generation into files: the one writer behind `sdft generate` and the
//! evaluation harness.
//!
//! - [`GenerationLog`]: a JSONL file of finished rows, one flushed line each
//!   (`id` plus what the caller records); reopening it drops a torn last line left
//!   by a killed run and returns the rows already there.
//! - [`generate_resumable`]: generates the requests the log does not hold yet,
//!   appending each row as it finishes, and returns every row in request order.
//! - [`GenerateJob`] / [`run_generate`]: the whole `sdft generate` stage: prompt
//!   rows ([`read_prompt_rows`]) rendered raw, through a [`Template`] or through the
//!   model's [`ChatFormat`] ([`PromptStyle`]), generated under the reuse rule of
//!   [`sdft_core::provenance`] (the settings in `OUT.settings.json`, the output
//!   locked while it is written), written as JSONL or Parquet.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sdft_core::provenance::{self, sidecar, Reuse, Settings};
use sdft_core::{Completion, Example, GenerationRequest, Generator, Prompt, PromptPiece};
use sdft_core::{SamplingParams, VERSION};
use serde_json::{json, Value};

use crate::parquet_io::{write_table, Column};
use crate::{read_records, ChatFormat, Error, Format, Result, Template};

/// A JSONL log of finished generations, one flushed line per row.
#[derive(Debug)]
pub struct GenerationLog {
    path: PathBuf,
    file: File,
}

impl GenerationLog {
    /// Opens (or creates) the log, truncating a torn last line, and returns the rows
    /// already in it by `id`.
    pub fn open(path: &Path) -> Result<(GenerationLog, HashMap<String, Value>)> {
        let mut done = HashMap::new();
        if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let complete = match text.rfind('\n') {
                Some(i) => &text[..=i],
                None => "",
            };
            if complete.len() != text.len() {
                std::fs::write(path, complete).map_err(|e| Error::io(path, e))?;
            }
            for (i, line) in complete.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(line).map_err(|e| Error::Json {
                    path: path.to_path_buf(),
                    line: i + 1,
                    column: e.column(),
                    message: e.to_string(),
                })?;
                let Some(id) = v.get("id").and_then(Value::as_str) else {
                    return Err(Error::Row {
                        path: path.to_path_buf(),
                        row: i + 1,
                        column: "id".into(),
                        expected: "a string".into(),
                        found: line.chars().take(80).collect(),
                    });
                };
                done.insert(id.to_string(), v);
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok((
            GenerationLog {
                path: path.to_path_buf(),
                file,
            },
            done,
        ))
    }

    /// Appends one row and flushes it.
    pub fn append(&mut self, row: &Value) -> Result<()> {
        writeln!(self.file, "{row}")
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// What [`generate_resumable`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Every request's row, in request order.
    pub rows: Vec<Value>,
    /// Rows generated now (the others came from the log).
    pub generated: usize,
    /// Completion tokens generated now.
    pub tokens: usize,
}

/// Generates the requests not yet in the log at `log`, `chunk` requests per
/// [`Generator::generate_each`] call, appending `row(index, completion)` (which must
/// hold the request's `id`) as each finishes; `progress(done, total)` is called once
/// before generating and after each row.
pub fn generate_resumable(
    gen: &mut dyn Generator,
    requests: &[GenerationRequest],
    params: &SamplingParams,
    log: &Path,
    chunk: usize,
    row: &mut dyn FnMut(usize, &Completion) -> Value,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Generated> {
    let (mut file, mut done) = GenerationLog::open(log)?;
    let todo: Vec<usize> = (0..requests.len())
        .filter(|i| !done.contains_key(&requests[*i].id))
        .collect();
    let mut finished = requests.len() - todo.len();
    if finished > 0 {
        tracing::info!(log = %log.display(), done = finished, total = requests.len(), "resuming");
    }
    progress(finished, requests.len());
    let mut tokens = 0;
    for c in todo.chunks(chunk.max(1)) {
        let reqs: Vec<GenerationRequest> = c.iter().map(|i| requests[*i].clone()).collect();
        let mut err: Option<Error> = None;
        let out = gen.generate_each(&reqs, params, &mut |i, o| {
            let v = row(c[i], o);
            if let Err(e) = file.append(&v) {
                err.get_or_insert(e);
            }
            done.insert(reqs[i].id.clone(), v);
            tokens += o.tokens;
            finished += 1;
            progress(finished, requests.len());
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if out.len() != reqs.len() {
            return Err(sdft_core::Error::CountMismatch {
                what: "generate_each",
                expected: reqs.len(),
                got: out.len(),
            }
            .into());
        }
    }
    let rows = requests
        .iter()
        .map(|r| done.remove(&r.id).unwrap_or(Value::Null))
        .collect();
    Ok(Generated {
        rows,
        generated: todo.len(),
        tokens,
    })
}

/// One input row of `sdft generate`: `id` and a `prompt` or chat `messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRow {
    pub id: String,
    pub prompt: Option<String>,
    pub messages: Option<Vec<(String, String)>>,
}

/// Reads JSONL/JSON/CSV/Parquet rows with `id` (else `row-N`) and a `prompt` string
/// or a `messages` list of `{role, content}`.
pub fn read_prompt_rows(path: &Path) -> Result<Vec<PromptRow>> {
    let records = read_records(path, None)?;
    let bad = |row: usize, column: &str, expected: &str, found: String| Error::Row {
        path: path.to_path_buf(),
        row,
        column: column.into(),
        expected: expected.into(),
        found,
    };
    let mut rows = Vec::with_capacity(records.len());
    for (i, r) in records.rows.iter().enumerate() {
        let r = r
            .as_ref()
            .ok_or_else(|| bad(i + 1, "-", "an object", "another value".into()))?;
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
                            _ => Err(bad(
                                i + 1,
                                "messages",
                                "objects with role and content strings",
                                m.to_string().chars().take(80).collect(),
                            )),
                        }
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            _ => None,
        };
        if prompt.is_none() && messages.is_none() {
            return Err(bad(
                i + 1,
                "prompt",
                "a `prompt` string or a `messages` list",
                "neither".into(),
            ));
        }
        rows.push(PromptRow {
            id,
            prompt,
            messages,
        });
    }
    Ok(rows)
}

/// How a [`PromptRow`] becomes a prompt.
// One value per job: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum PromptStyle {
    /// The `prompt` text as is, after a BOS marker when the model adds one.
    Raw { bos: bool },
    /// The `prompt` as the instruction of a template.
    Template(Template),
    /// `messages` (or a `prompt` as one user message) through the model's chat
    /// template, with its BOS and EOS token texts.
    Chat(ChatFormat),
}

impl PromptStyle {
    /// The prompt of one row.
    pub fn render(&self, row: &PromptRow) -> Result<Prompt> {
        let text = || {
            row.prompt.clone().ok_or_else(|| Error::Template {
                name: format!("row {}", row.id),
                message: "`messages` needs --chat".into(),
            })
        };
        Ok(match self {
            PromptStyle::Chat(chat) => {
                let messages = match (&row.messages, &row.prompt) {
                    (Some(m), _) => m.clone(),
                    (_, p) => vec![("user".to_string(), p.clone().unwrap_or_default())],
                };
                Prompt::raw(chat.render(&messages, true)?)
            }
            PromptStyle::Template(t) => t.render_prompt(&Example::new(text()?, ""))?,
            PromptStyle::Raw { bos: true } => {
                Prompt::new(vec![PromptPiece::Bos, PromptPiece::Text(text()?)])
            }
            PromptStyle::Raw { bos: false } => Prompt::raw(text()?),
        })
    }

    /// The style's settings: `prompt_style` and, for templates, `template` and
    /// `template_sha256`.
    fn record(&self, s: &mut Settings) {
        match self {
            PromptStyle::Raw { bos } => s.set("prompt_style", if *bos { "raw+bos" } else { "raw" }),
            PromptStyle::Template(t) => {
                s.set("prompt_style", "template");
                s.set("template", &t.name);
                s.set("prompt_format", t.prompt_format().to_string());
                s.set("template_hash", t.template_hash());
            }
            PromptStyle::Chat(chat) => {
                s.set("prompt_style", "chat");
                s.set(
                    "template_sha256",
                    provenance::sha256_hex(chat.source().as_bytes()),
                );
            }
        }
    }
}

/// The output formats of `sdft generate`, checked before anything is generated.
pub fn generation_format(path: &Path) -> Result<Format> {
    match Format::from_path(path) {
        Ok(f @ (Format::Jsonl | Format::Parquet)) => Ok(f),
        _ => Err(Error::UnsupportedOutput {
            path: path.to_path_buf(),
            expected: "a file ending in .jsonl or .parquet",
        }),
    }
}

/// The `sdft generate` stage.
pub struct GenerateJob {
    pub rows: Vec<PromptRow>,
    pub style: PromptStyle,
    /// The sampling (a template's stop strings are added to it).
    pub params: SamplingParams,
    /// `OUT.jsonl` or `OUT.parquet`; its settings go to `OUT.settings.json`, its
    /// progress to `OUT.partial.jsonl`.
    pub output: PathBuf,
    /// Settings the caller knows (model and adapter hashes, input hash, limit); the
    /// job adds the prompt style, template and sampling.
    pub settings: Settings,
    /// Redo the output even when it was made with other settings.
    pub overwrite: bool,
    /// Requests per generator call.
    pub chunk: usize,
}

/// What [`run_generate`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSummary {
    pub rows: usize,
    /// Rows generated now.
    pub generated: usize,
    /// Rows found from an earlier run with the same settings.
    pub resumed: usize,
    pub tokens: usize,
    /// The output was already finished with these settings (nothing was written).
    pub up_to_date: bool,
}

/// The partial (resume) file of a generation output.
pub fn partial_path(output: &Path) -> PathBuf {
    sidecar(output, "partial.jsonl")
}

/// Runs a [`GenerateJob`]: checks the output format, locks the output, applies the
/// reuse rule, generates what is missing and writes the output in input order,
/// atomically.
pub fn run_generate(
    gen: &mut dyn Generator,
    job: GenerateJob,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GenerateSummary> {
    let format = generation_format(&job.output)?;
    let params = match &job.style {
        PromptStyle::Template(t) => t.sampling(&job.params),
        _ => job.params.clone(),
    };
    let mut requests = Vec::with_capacity(job.rows.len());
    for row in &job.rows {
        requests.push(GenerationRequest::new(
            row.id.clone(),
            job.style.render(row)?,
        ));
    }
    let mut settings = job.settings.clone().with("crate_version", VERSION);
    job.style.record(&mut settings);
    settings.set("sampling", &params);
    settings.set("format", format.as_str());
    let partial = partial_path(&job.output);
    let opened = provenance::open_output(
        &job.output,
        &sidecar(&job.output, "settings.json"),
        &settings,
        job.overwrite,
        || {
            provenance::remove_path(&partial)?;
            provenance::remove_path(&job.output)
        },
    )?;
    if opened.reuse == Reuse::Continue && job.output.is_file() && !partial.exists() {
        return Ok(GenerateSummary {
            rows: requests.len(),
            generated: 0,
            resumed: requests.len(),
            tokens: 0,
            up_to_date: true,
        });
    }
    let prompt_tokens: Vec<usize> = requests
        .iter()
        .map(|r| gen.count_tokens(&r.prompt).unwrap_or(0))
        .collect();
    let out = generate_resumable(
        gen,
        &requests,
        &params,
        &partial,
        job.chunk,
        &mut |i, c| {
            json!({
                "id": requests[i].id,
                "text": c.text,
                "prompt_tokens": prompt_tokens[i],
                "completion_tokens": c.tokens,
                "finish_reason": c.finish_reason.as_str(),
            })
        },
        progress,
    )?;
    write_generations(&job.output, format, &out.rows)?;
    std::fs::remove_file(&partial).map_err(|e| Error::io(&partial, e))?;
    drop(opened);
    Ok(GenerateSummary {
        rows: out.rows.len(),
        generated: out.generated,
        resumed: out.rows.len() - out.generated,
        tokens: out.tokens,
        up_to_date: false,
    })
}

/// Writes generated rows (`id`, `text`, `prompt_tokens`, `completion_tokens`,
/// `finish_reason`) as JSONL or Parquet, atomically.
pub fn write_generations(path: &Path, format: Format, rows: &[Value]) -> Result<()> {
    if format == Format::Parquet {
        let s = |k: &str| {
            Column::Str(
                rows.iter()
                    .map(|r| r[k].as_str().unwrap_or("").to_string())
                    .collect(),
            )
        };
        let n = |k: &str| Column::Int(rows.iter().map(|r| r[k].as_i64().unwrap_or(0)).collect());
        return write_table(
            path,
            vec![
                ("id", s("id")),
                ("text", s("text")),
                ("prompt_tokens", n("prompt_tokens")),
                ("completion_tokens", n("completion_tokens")),
                ("finish_reason", s("finish_reason")),
            ],
        );
    }
    let mut text = String::new();
    for r in rows {
        text.push_str(&r.to_string());
        text.push('\n');
    }
    crate::atomic::write_bytes(path, text.as_bytes())
}
