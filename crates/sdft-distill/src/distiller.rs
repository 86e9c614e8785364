//! [`Distiller`]: builds the rewriting prompts, runs any [`Generator`] over them,
//! applies the checks and falls back to the original where a check fails.

use std::time::Instant;

use sdft_core::{Completion, Example, GenerationRequest, Generator};

use crate::checks::py_strip;
use crate::config::{DistillConfig, EmptyPolicy};
use crate::row::DistilledRow;
use crate::task::run_checks;
use crate::Result;

/// Where finished rows go, a batch at a time (e.g. atomic chunk files).
pub trait Sink {
    /// Persists `rows`; called with at most `flush_rows` rows, in completion order.
    fn write(&mut self, rows: &[DistilledRow]) -> Result<()>;
}

/// Collects rows in memory.
impl Sink for Vec<DistilledRow> {
    fn write(&mut self, rows: &[DistilledRow]) -> Result<()> {
        self.extend_from_slice(rows);
        Ok(())
    }
}

/// The fallback reason of a row whose prompt and `max_new_tokens` do not fit the
/// generator's context.
pub const TOO_LONG: &str = "too_long";

/// A row left out under [`EmptyPolicy::Skip`]: its id and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedRow {
    pub id: String,
    pub reason: String,
}

/// What one [`Distiller::run`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStats {
    /// Rows written (generated plus empty rows kept).
    pub rows: usize,
    /// Rows sent to the generator.
    pub generated: usize,
    pub tokens_generated: usize,
    pub skipped: Vec<SkippedRow>,
    pub seconds: f64,
}

/// The self-distillation stage over any [`Generator`].
///
/// Each example's final turn is rewritten from the distillation template (which
/// shows the reference answer; earlier turns are kept in full), the rewrite is
/// stripped and checked, and the row records the rewrite, the chosen response and
/// the verdict. Rows are joined by stable id, never by position.
pub struct Distiller {
    config: DistillConfig,
}

impl Distiller {
    pub fn new(config: DistillConfig) -> Self {
        Distiller { config }
    }

    pub fn config(&self) -> &DistillConfig {
        &self.config
    }

    /// Why an example cannot be rewritten (an empty instruction or reference), if so.
    pub fn empty_reason(ex: &Example) -> Option<&'static str> {
        if py_strip(&ex.instruction).is_empty() {
            Some("empty_instruction")
        } else if py_strip(&ex.output).is_empty() {
            Some("empty_output")
        } else {
            None
        }
    }

    /// The generation request of an example: its rewriting prompt, keyed by its id.
    pub fn request(&self, ex: &Example) -> Result<GenerationRequest> {
        Ok(GenerationRequest::new(
            ex.id.clone(),
            self.config.template.render_prompt(ex)?,
        ))
    }

    /// The row for an example from its completion (or `None` when nothing was
    /// generated, with the reason), with the checks applied.
    pub fn decide(
        &self,
        ex: &Example,
        completion: Option<&Completion>,
        empty: Option<&str>,
        prompt_tokens: Option<usize>,
    ) -> DistilledRow {
        let t = &self.config.template;
        let original = py_strip(&ex.output).to_string();
        let (distilled, kept, reason) = match (completion, empty) {
            (Some(c), _) => {
                let rewrite = py_strip(&c.text).to_string();
                match run_checks(&self.config.checks, ex, &rewrite) {
                    Ok(()) => (Some(rewrite), true, None),
                    Err(r) => (Some(rewrite), false, Some(r.to_string())),
                }
            }
            (None, reason) => (None, false, Some(reason.unwrap_or("not_generated").into())),
        };
        let response = if kept {
            distilled.clone().unwrap_or_default()
        } else {
            original.clone()
        };
        let strip = |s: &Option<String>| s.as_ref().map(|x| py_strip(x).to_string());
        DistilledRow {
            id: ex.id.clone(),
            system: strip(&ex.system),
            instruction: py_strip(&ex.instruction).to_string(),
            input: strip(&ex.input),
            history: ex.history.clone(),
            original,
            distilled,
            response,
            kept,
            reason,
            prompt: t
                .render_prompt(ex)
                .map(|p| t.display(&p))
                .unwrap_or_default(),
            prompt_tokens: prompt_tokens.map(|n| n as i64),
            completion_tokens: completion.map(|c| c.tokens as i64),
            finish_reason: completion.map(|c| c.finish_reason.as_str().to_string()),
        }
    }

    /// Distills `examples` (all of them: filter out finished ids before calling to
    /// resume), handing rows to `sink` every `flush_rows` rows as they finish and
    /// calling `progress` for each row.
    pub fn run(
        &self,
        generator: &mut dyn Generator,
        examples: &[Example],
        sink: &mut dyn Sink,
        progress: &mut dyn FnMut(&DistilledRow),
    ) -> Result<RunStats> {
        let start = Instant::now();
        let mut stats = RunStats::default();
        let mut buffer: Vec<DistilledRow> = Vec::new();
        let mut todo: Vec<&Example> = Vec::new();
        for ex in examples {
            match Self::empty_reason(ex) {
                None => todo.push(ex),
                Some(reason) => {
                    tracing::warn!(id = %ex.id, reason, "nothing to rewrite");
                    match self.config.on_empty {
                        EmptyPolicy::Skip => stats.skipped.push(SkippedRow {
                            id: ex.id.clone(),
                            reason: reason.into(),
                        }),
                        EmptyPolicy::Keep => {
                            let row = self.decide(ex, None, Some(reason), None);
                            progress(&row);
                            buffer.push(row);
                        }
                    }
                }
            }
        }
        // A prompt that leaves no room for `max_new_tokens` in the model's context
        // falls back (`too_long`) instead of failing the whole run; it is counted
        // with a cap, so a huge row is never encoded in full.
        let room = generator
            .context_length()
            .map(|n| n.saturating_sub(self.config.sampling.max_new_tokens));
        let mut requests: Vec<GenerationRequest> = Vec::with_capacity(todo.len());
        let mut prompt_tokens: Vec<Option<usize>> = Vec::with_capacity(todo.len());
        let mut fits: Vec<&Example> = Vec::with_capacity(todo.len());
        for ex in todo {
            let request = self.request(ex)?;
            let count = match room {
                Some(room) => generator.count_tokens_capped(&request.prompt, room),
                None => generator.count_tokens(&request.prompt),
            };
            match (room, count) {
                (Some(room), Some(n)) if n > room => {
                    tracing::warn!(
                        id = %ex.id,
                        room,
                        max_new_tokens = self.config.sampling.max_new_tokens,
                        "prompt too long for the model's context: falling back to the original"
                    );
                    let row = self.decide(ex, None, Some(TOO_LONG), None);
                    progress(&row);
                    buffer.push(row);
                }
                _ => {
                    requests.push(request);
                    prompt_tokens.push(count);
                    fits.push(ex);
                }
            }
        }
        let todo = fits;
        let flush = self.config.flush_rows.max(1);
        let mut sink_err: Option<crate::Error> = None;
        stats.rows = buffer.len();
        if buffer.len() >= flush {
            sink.write(&buffer)?;
            buffer.clear();
        }
        generator.generate_each(&requests, &self.config.sampling, &mut |i, c| {
            let row = self.decide(todo[i], Some(c), None, prompt_tokens[i]);
            stats.tokens_generated += c.tokens;
            stats.generated += 1;
            stats.rows += 1;
            progress(&row);
            buffer.push(row);
            if buffer.len() >= flush && sink_err.is_none() {
                if let Err(e) = sink.write(&buffer) {
                    sink_err = Some(e);
                }
                buffer.clear();
            }
        })?;
        if let Some(e) = sink_err {
            return Err(e);
        }
        if !buffer.is_empty() {
            sink.write(&buffer)?;
        }
        stats.seconds = start.elapsed().as_secs_f64();
        Ok(stats)
    }
}
