//! [`OpenAiScorer`]: sdft-core's [`Scorer`] over `POST /v1/completions` with
//! `echo: true, logprobs: 0, max_tokens: 1`, the prompt-scoring request that vLLM
//! (and SGLang) answer with a log-probability per prompt token. llama-server (0.3.36's
//! llama.cpp) answers without prompt log-probabilities and TGI's OpenAI route has no
//! echo, so scoring there fails, naming the row: "the server does not echo prompt
//! log-probabilities" (or the server's own 4xx).

use sdft_core::{Score, ScoreRequest, Scorer};
use serde_json::{json, Value};

use crate::{Client, Error, SpecialText};

/// Scores continuations on a server that echoes prompt log-probabilities.
///
/// The server tokenizes prompt and continuation as one text, so a token that straddles
/// their boundary is counted with the continuation; the in-process scorer encodes the
/// two separately. The continuation's tokens are those whose `text_offset` lies in
/// `[len(prompt), len(prompt + continuation))` (offsets in characters, as vLLM gives).
#[derive(Debug, Clone)]
pub struct OpenAiScorer {
    pub client: Client,
    pub special: SpecialText,
}

/// Sums the echoed log-probabilities of the tokens that start inside
/// `[start, end)` (character offsets).
pub fn sum_echoed(v: &Value, start: usize, end: usize) -> std::result::Result<Score, String> {
    let lp = &v["choices"].get(0).ok_or("no `choices[0]` in the answer")?["logprobs"];
    let offsets = lp["text_offset"]
        .as_array()
        .ok_or("no `logprobs.text_offset`: the server does not echo prompt log-probabilities")?;
    let logprobs = lp["token_logprobs"]
        .as_array()
        .ok_or("no `logprobs.token_logprobs` in the answer")?;
    if offsets.len() != logprobs.len() {
        return Err(format!(
            "{} text offsets but {} token log-probabilities",
            offsets.len(),
            logprobs.len()
        ));
    }
    let mut score = Score {
        sum_logprob: 0.0,
        tokens: 0,
    };
    for (o, l) in offsets.iter().zip(logprobs) {
        let o = o.as_u64().ok_or("a `text_offset` is not an integer")? as usize;
        if o >= start && o < end {
            score.sum_logprob += l
                .as_f64()
                .ok_or("a continuation token has no log-probability")?;
            score.tokens += 1;
        }
    }
    Ok(score)
}

impl Scorer for OpenAiScorer {
    fn score(&mut self, requests: &[ScoreRequest]) -> sdft_core::Result<Vec<Score>> {
        let mut out = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            let row = format!("score request {i}");
            let prompt = self.special.render(&r.prompt);
            let cont = SpecialText {
                bos: self.special.bos.clone(),
                eos: self.special.eos.clone(),
            }
            .render_continuation(&r.continuation);
            let start = prompt.chars().count();
            let end = start + cont.chars().count();
            let body = json!({
                "prompt": format!("{prompt}{cont}"),
                "echo": true,
                "logprobs": 0,
                "max_tokens": 1,
                "temperature": 0.0,
            });
            let answer = self.client.post("completions", &row, body)?;
            let score = sum_echoed(&answer, start, end).map_err(|message| Error::BadResponse {
                row,
                url: format!("{}/completions", self.client.base_url()),
                message,
            })?;
            out.push(score);
        }
        Ok(out)
    }
}

impl SpecialText {
    /// A continuation as text: every marker, a leading BOS included, becomes its text.
    pub fn render_continuation(&self, p: &sdft_core::Prompt) -> String {
        p.display_with(&self.bos, &self.eos)
    }
}
