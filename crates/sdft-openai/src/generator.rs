//! [`OpenAiGenerator`]: sdft-core's [`Generator`] over `POST /v1/completions`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use sdft_core::rng::SplitMix64;
use sdft_core::SamplingParams;
use sdft_core::{Completion, FinishReason, GenerationRequest, Generator, Prompt, PromptPiece};
use serde_json::{json, Value};

use crate::{Client, Error, Result};

/// The seed sent for one row: the first draw of the row's random stream
/// ([`SplitMix64::for_row`], the stream sdft-model's engine samples from), kept to 31
/// bits because llama-server stores seeds as `uint32` and other servers as signed
/// integers. A rerun, a resumed run or a different `--concurrency` asks for the same
/// seed per row.
pub fn row_seed(seed: u64, id: &str) -> u64 {
    SplitMix64::for_row(seed, id).next_u64() & 0x7fff_ffff
}

/// How a prompt's BOS/EOS markers become text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialText {
    /// The model's BOS token as text (e.g. `<s>`), for BOS markers after the start.
    pub bos: String,
    /// The model's EOS token as text (e.g. `</s>`).
    pub eos: String,
}

impl SpecialText {
    /// The prompt as one string. A leading BOS marker is dropped: every server named
    /// in docs/serving.md tokenizes a completions prompt with the model's own
    /// `add_bos_token` setting (llama-server: `add_special = true`; vLLM, SGLang and
    /// TGI: the HF tokenizer's default), and our templates put a leading BOS exactly
    /// when that setting is on, so the server's BOS stands in for ours. Other markers
    /// become the token's text, which the servers parse back into the special token.
    pub fn render(&self, prompt: &Prompt) -> String {
        let mut out = String::new();
        for (i, p) in prompt.pieces.iter().enumerate() {
            match p {
                PromptPiece::Bos if i == 0 => {}
                PromptPiece::Bos => out.push_str(&self.bos),
                PromptPiece::Eos => out.push_str(&self.eos),
                PromptPiece::Text(t) => out.push_str(t),
            }
        }
        out
    }
}

/// The request body for one row. `top_k` and the repetition penalty are sent only when
/// set (OpenAI itself rejects them); the penalty goes under both names in use
/// (`repetition_penalty`: vLLM, SGLang, TGI; `repeat_penalty` with `repeat_last_n: -1`,
/// the whole context: llama-server).
pub fn request_body(prompt: &str, id: &str, params: &SamplingParams) -> Value {
    let mut body = json!({
        "prompt": prompt,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": row_seed(params.seed, id),
        "stream": false,
    });
    if params.top_k > 0 {
        body["top_k"] = json!(params.top_k);
    }
    if !params.stop.is_empty() {
        body["stop"] = json!(params.stop);
    }
    if params.repetition_penalty != 1.0 {
        body["repetition_penalty"] = json!(params.repetition_penalty);
        body["repeat_penalty"] = json!(params.repetition_penalty);
        body["repeat_last_n"] = json!(-1);
    }
    body
}

/// Reads `choices[0]` of a completions answer. `finish_reason` `length` is
/// [`FinishReason::Length`]; `stop` is [`FinishReason::Stop`] when the server says a
/// stop string ended it (vLLM/SGLang: a string `stop_reason`) and
/// [`FinishReason::Eos`] otherwise. llama-server reports `stop` for both, so there a
/// stop-string ending is recorded as `eos`. `tokens` is `usage.completion_tokens`.
pub fn parse_completion(v: &Value) -> std::result::Result<Completion, String> {
    let choice = v["choices"].get(0).ok_or("no `choices[0]` in the answer")?;
    let text = choice["text"]
        .as_str()
        .ok_or("`choices[0].text` is not a string")?
        .to_string();
    let finish_reason = match choice["finish_reason"].as_str() {
        Some("length") => FinishReason::Length,
        Some("stop") | Some("eos_token") if choice["stop_reason"].is_string() => FinishReason::Stop,
        Some("stop") | Some("eos_token") => FinishReason::Eos,
        other => {
            return Err(format!(
                "`finish_reason` {other:?}: expected stop or length"
            ))
        }
    };
    let tokens = v["usage"]["completion_tokens"]
        .as_u64()
        .ok_or("no `usage.completion_tokens` in the answer")? as usize;
    Ok(Completion {
        text,
        tokens,
        finish_reason,
    })
}

/// A [`Generator`] that sends each row to `POST {base_url}/completions`, `concurrency`
/// requests in flight. Each row is its own request with its own seed, so the outputs
/// do not depend on the concurrency or on which rows ran together.
#[derive(Debug, Clone)]
pub struct OpenAiGenerator {
    pub client: Client,
    pub concurrency: usize,
    pub special: SpecialText,
}

impl OpenAiGenerator {
    pub fn new(client: Client, concurrency: usize, special: SpecialText) -> Self {
        OpenAiGenerator {
            client,
            concurrency: concurrency.max(1),
            special,
        }
    }

    /// Generates one row (all retries included).
    pub fn generate_one(
        &self,
        req: &GenerationRequest,
        params: &SamplingParams,
    ) -> Result<Completion> {
        let body = request_body(&self.special.render(&req.prompt), &req.id, params);
        let answer = self.client.post("completions", &req.id, body)?;
        let mut c = parse_completion(&answer).map_err(|message| Error::BadResponse {
            row: req.id.clone(),
            url: format!("{}/completions", self.client.base_url()),
            message,
        })?;
        // The server has no `stop_after`: the text is cut here, as the local engine
        // cuts it (a server's generation past that point is only wasted time).
        if let Some(end) = params.stop_after_end(&c.text) {
            c.text.truncate(end);
            c.finish_reason = FinishReason::Stop;
        }
        Ok(c)
    }
}

impl Generator for OpenAiGenerator {
    /// Reports rows as they finish (completion order, with their request index). On
    /// the first failure no new requests start; those in flight finish and are
    /// reported, then the error (naming the row) is returned.
    fn generate_each(
        &mut self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
        done: &mut dyn FnMut(usize, &Completion),
    ) -> sdft_core::Result<Vec<Completion>> {
        params.validate()?;
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let mut out: Vec<Option<Completion>> = vec![None; requests.len()];
        let mut first_err: Option<Error> = None;
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel::<(usize, Result<Completion>)>();
            for _ in 0..self.concurrency.min(requests.len()) {
                let tx = tx.clone();
                let (next, failed, this) = (&next, &failed, &*self);
                s.spawn(move || loop {
                    if failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(req) = requests.get(i) else { break };
                    let r = this.generate_one(req, params);
                    if r.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            for (i, r) in rx {
                match r {
                    Ok(c) => {
                        done(i, &c);
                        out[i] = Some(c);
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        });
        if let Some(e) = first_err {
            return Err(e.into());
        }
        Ok(out
            .into_iter()
            .map(|c| c.expect("every row answered"))
            .collect())
    }
}
