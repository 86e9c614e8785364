//! [`Engine`]: batched, KV-cached generation with continuous batching, and scoring.
//!
//! Up to `batch_size` sequences run at once, each in a slot of a batched KV cache.
//! New prompts are prefilled together (logits only at each prompt's last
//! position); then every step decodes one token for all active slots. A finished
//! sequence frees its slot, which the next queued prompt takes at once, so long
//! tails do not idle the batch. Each row samples from its own random stream
//! ([`SplitMix64::for_row`]), so its output does not depend on its batch.

use std::collections::VecDeque;

use burn::prelude::*;
use sdft_core::rng::SplitMix64;
use sdft_core::{
    Completion, FinishReason, GenerationRequest, Generator, SamplingParams, Score, ScoreRequest,
    Scorer,
};

use super::sampler::sample;
use super::steps::{StepLogits, Steps};
use super::stop::{cut, Detok, TextStops};
use crate::{Error, Model, Result};

/// One sequence in flight.
struct Active {
    index: usize,
    rng: SplitMix64,
    /// Prompt and generated ids so far.
    seen: Vec<u32>,
    prompt_len: usize,
    /// The token to feed at the next step.
    next: u32,
    /// True while `next` is freshly sampled and not yet checked or appended.
    pending: bool,
    /// The generated text so far, kept only when text stop strings are set.
    detok: Detok,
}

/// Generation and scoring over a loaded [`Model`].
pub struct Engine<B: Backend> {
    pub model: Model<B>,
    pub batch_size: usize,
    /// Token ids that end a sequence (EOS and the config's extra EOS ids).
    pub stop_ids: Vec<u32>,
    /// The model's weights packed for the CPU kernels, made on first use and
    /// kept while `model` holds the same weight tensors (see [`Engine::host_model`]).
    #[cfg(feature = "flex")]
    host_model: std::sync::Mutex<Option<std::sync::Arc<crate::kernels::decode::HostModel>>>,
    /// Tokens scored so far (see [`Engine::score_counts`]).
    score_counts: std::sync::Mutex<super::score::ScoreCounts>,
}

impl<B: Backend> Engine<B> {
    pub fn new(model: Model<B>, batch_size: usize) -> Self {
        let mut stop_ids: Vec<u32> = model.config.eos_token_ids.clone();
        if let Some(e) = model.tokenizer.eos_id() {
            stop_ids.push(e);
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        Engine {
            model,
            batch_size: batch_size.max(1),
            stop_ids,
            #[cfg(feature = "flex")]
            host_model: std::sync::Mutex::new(None),
            score_counts: Default::default(),
        }
    }

    /// Tokens scored by this engine so far: prompt tokens (a prompt shared by
    /// consecutive requests counted once) and continuation tokens.
    pub fn score_counts(&self) -> super::score::ScoreCounts {
        *self.score_counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add_counts(&self, c: super::score::ScoreCounts) {
        let mut s = self.score_counts.lock().unwrap_or_else(|e| e.into_inner());
        s.context_tokens += c.context_tokens;
        s.continuation_tokens += c.continuation_tokens;
    }

    /// The model's weights packed for the CPU kernels, or `None` when generation
    /// takes the generic path (see [`crate::kernels::pack::host_model`]). Packed on
    /// first use and again only when the model's weight tensors were replaced
    /// (a merged adapter, another model), which is checked by storage identity
    /// on every call.
    #[cfg(feature = "flex")]
    pub(super) fn host_model(&self) -> Option<std::sync::Arc<crate::kernels::decode::HostModel>> {
        let llama = &self.model.llama;
        let mut cached = self.host_model.lock().unwrap_or_else(|e| e.into_inner());
        // A quantized-only model's matrices cannot be replaced (it takes no
        // adapter): built once. Otherwise, packed again when they were.
        let sources = match llama.quantized_only {
            true => None,
            false => Some(crate::kernels::pack::weight_sources(llama)?),
        };
        let current = |m: &&std::sync::Arc<crate::kernels::decode::HostModel>| {
            sources.as_ref().is_none_or(|s| m.packs(s))
        };
        if let Some(m) = cached.as_ref().filter(current) {
            return Some(m.clone());
        }
        // The old packing goes first: two at once would hold three copies.
        *cached = None;
        let t = std::time::Instant::now();
        let packed = std::sync::Arc::new(crate::kernels::pack::host_model(
            &self.model.llama,
            &self.model.config,
            self.model.quantized.as_deref(),
        )?);
        tracing::debug!(
            mib = packed.packed_bytes() >> 20,
            secs = t.elapsed().as_secs_f64(),
            "packed the weights for the CPU kernels"
        );
        *cached = Some(packed.clone());
        Some(packed)
    }

    /// The weights the CPU kernels run on (packed or kept quantized on first
    /// use), or `None` when generation takes the generic path: for reports of
    /// what the kernels hold.
    #[cfg(feature = "flex")]
    pub fn kernel_weights(&self) -> Option<std::sync::Arc<crate::kernels::decode::HostModel>> {
        self.host_model()
    }

    /// The ids that end a sequence under `params`: [`Engine::stop_ids`], and each
    /// stop string that is the text of one special token (a chat template's
    /// end-of-turn: `<|im_end|>`, `<|eot_id|>`, `</s>`). Such a string never shows
    /// in decoded text (special tokens are skipped), so it stops as a token, and
    /// like EOS it is not part of the completion.
    pub fn stop_ids_for(&self, params: &SamplingParams) -> Vec<u32> {
        let mut ids = self.stop_ids.clone();
        ids.extend(
            params
                .stop
                .iter()
                .filter_map(|s| self.model.tokenizer.special_token_id(s)),
        );
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn encode_request(&self, r: &GenerationRequest) -> Result<Vec<u32>> {
        let ids = self.model.encode_pieces(&r.prompt)?;
        if ids.is_empty() {
            return Err(Error::Other(format!(
                "row {}: the prompt encodes to no tokens",
                r.id
            )));
        }
        self.model
            .check_ids(&ids)
            .map_err(|e| Error::Other(format!("row {}: {e}", r.id)))?;
        Ok(ids)
    }

    /// Generates one completion per request, in order, calling `done(index, &c)` as
    /// each finishes (in completion order), e.g. to write results incrementally.
    pub fn generate_with(
        &self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
        done: &mut dyn FnMut(usize, &Completion),
    ) -> Result<Vec<Completion>> {
        params.validate().map_err(|e| Error::Other(e.to_string()))?;
        let stop_ids = self.stop_ids_for(params);
        let stops = TextStops::new(&self.model.tokenizer, params)?;
        let prompts: Vec<Vec<u32>> = requests
            .iter()
            .map(|r| self.encode_request(r))
            .collect::<Result<_>>()?;
        let max_pos = self.model.llama.rope.max_positions();
        for (r, p) in requests.iter().zip(&prompts) {
            if p.len() + params.max_new_tokens > max_pos {
                return Err(Error::Other(format!(
                    "row {}: {} prompt tokens + {} new tokens exceed the model's {max_pos} positions",
                    r.id,
                    p.len(),
                    params.max_new_tokens
                )));
            }
        }
        let mut results: Vec<Option<Completion>> = vec![None; requests.len()];
        let mut queue: VecDeque<usize> = (0..requests.len()).collect();
        let slots = self.batch_size.min(requests.len().max(1));
        let mut active: Vec<Option<Active>> = (0..slots).map(|_| None).collect();
        let mut steps = Steps::open(self, slots, 64);
        loop {
            // Fill free slots from the queue with one batched prefill.
            let free: Vec<usize> = (0..slots).filter(|s| active[*s].is_none()).collect();
            let mut fill: Vec<(usize, usize)> = Vec::new();
            for s in free {
                match queue.pop_front() {
                    Some(i) => fill.push((s, i)),
                    None => break,
                }
            }
            if !fill.is_empty() {
                let seqs: Vec<Vec<u32>> = fill.iter().map(|(_, i)| prompts[*i].clone()).collect();
                let need = seqs.iter().map(Vec::len).max().unwrap_or(0) + params.max_new_tokens;
                let capacity = need.max(steps.capacity()).min(max_pos);
                steps.grow(capacity);
                let logits = steps.prefill(&self.model, &seqs, &fill);
                let mut new: Vec<Active> = fill
                    .iter()
                    .map(|(_, i)| Active {
                        index: *i,
                        rng: SplitMix64::for_row(params.seed, &requests[*i].id),
                        seen: prompts[*i].clone(),
                        prompt_len: prompts[*i].len(),
                        next: 0,
                        pending: false,
                        detok: Detok::default(),
                    })
                    .collect();
                self.choose(logits, new.iter_mut().map(Some).collect(), params)?;
                for ((s, _), a) in fill.iter().zip(new) {
                    active[*s] = Some(a);
                }
            }
            // Retire finished sequences (the token just chosen decides).
            for slot in active.iter_mut() {
                let finished = match slot {
                    Some(a) if a.pending => {
                        a.pending = false;
                        self.finish(a, params, &stop_ids, &stops)?
                    }
                    _ => None,
                };
                if let Some(c) = finished {
                    let i = slot.as_ref().map(|a| a.index).unwrap_or(0);
                    done(i, &c);
                    results[i] = Some(c);
                    *slot = None;
                }
            }
            if active.iter().all(Option::is_none) {
                if queue.is_empty() {
                    break;
                }
                continue;
            }
            if active.iter().any(Option::is_none) && !queue.is_empty() {
                continue;
            }
            // One decode step for every active slot.
            let logits = self.decode_step(&active, &mut steps);
            self.choose(
                logits,
                active.iter_mut().map(Option::as_mut).collect(),
                params,
            )?;
        }
        Ok(results
            .into_iter()
            .map(|c| c.expect("every request completes"))
            .collect())
    }

    /// Sets each row's `next` token from its logits (`rows[i]` is logits row `i`;
    /// `None` rows are idle slots). Greedy decoding without a repetition penalty
    /// takes the argmax on the device, so only one id per row leaves it; every
    /// other setting reads the rows back and runs [`sample`] on the host.
    fn choose(
        &self,
        logits: StepLogits<B>,
        rows: Vec<Option<&mut Active>>,
        params: &SamplingParams,
    ) -> Result<()> {
        let logits = match logits {
            StepLogits::Device(t) if params.is_greedy() && params.repetition_penalty == 1.0 => {
                let ids = device_argmax(t)?;
                for (a, id) in rows.into_iter().zip(ids) {
                    if let Some(a) = a {
                        a.next = id;
                        a.pending = true;
                    }
                }
                return Ok(());
            }
            StepLogits::Device(t) => rows_of(t)?,
            StepLogits::Host(rows) => rows,
        };
        for (a, mut row) in rows.into_iter().zip(logits) {
            if let Some(a) = a {
                a.next = sample(&mut row, &a.seen, params, &mut a.rng);
                a.pending = true;
            }
        }
        Ok(())
    }

    /// Applies the chosen `next` token to a sequence; returns its completion when it
    /// has finished. Text stops are watched on the row's incrementally decoded text
    /// (see [`super::stop`]); the completion's text is always one decode of all its
    /// tokens, cut where [`cut`] says, so it equals what decoding everything after
    /// every token would give.
    fn finish(
        &self,
        a: &mut Active,
        params: &SamplingParams,
        stop_ids: &[u32],
        stops: &TextStops,
    ) -> Result<Option<Completion>> {
        let tokenizer = &self.model.tokenizer;
        // The completion of `tokens` tokens whose text is `text`: cut as a stop
        // where a stop shows in it, else ended for `reason`.
        let ended = |text: String, tokens: usize, reason: FinishReason| match cut(&text, stops) {
            Some(at) => Completion {
                text: text[..at].to_string(),
                tokens,
                finish_reason: FinishReason::Stop,
            },
            None => Completion {
                text,
                tokens,
                finish_reason: reason,
            },
        };
        let generated = a.seen.len() - a.prompt_len;
        if stop_ids.contains(&a.next) {
            // A stop the incremental text held back (an incomplete character at the
            // very end) still cuts; the EOS token is then not counted.
            let text = tokenizer.decode(&a.seen[a.prompt_len..], true)?;
            let c = ended(text, generated + 1, FinishReason::Eos);
            let tokens = if c.finish_reason == FinishReason::Stop {
                generated
            } else {
                generated + 1
            };
            return Ok(Some(Completion { tokens, ..c }));
        }
        a.seen.push(a.next);
        let gen = &a.seen[a.prompt_len..];
        let shown = !stops.is_empty() && a.detok.push(tokenizer, gen, stops)?;
        if shown || gen.len() >= params.max_new_tokens {
            let c = ended(
                tokenizer.decode(gen, true)?,
                gen.len(),
                FinishReason::Length,
            );
            if c.finish_reason == FinishReason::Stop || gen.len() >= params.max_new_tokens {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Feeds each active slot's `next` token; returns each slot's logits (an idle
    /// slot's row is there and meaningless).
    fn decode_step(&self, active: &[Option<Active>], steps: &mut Steps<B>) -> StepLogits<B> {
        // Inactive slots run a dummy token at position 0 with everything masked but
        // itself; their results are ignored.
        let lens: Vec<usize> = active
            .iter()
            .map(|a| a.as_ref().map(|a| a.seen.len() - 1).unwrap_or(0))
            .collect();
        let needed = lens.iter().max().copied().unwrap_or(0) + 1;
        if needed > steps.capacity() {
            steps.grow((steps.capacity() * 2).max(needed));
        }
        let tokens: Vec<Option<u32>> = active.iter().map(|a| a.as_ref().map(|a| a.next)).collect();
        steps.decode(&self.model, &tokens, &lens)
    }

    /// Sum log-likelihood of each continuation given its prompt. On the CPU
    /// kernels, consecutive requests with the same prompt share one evaluation
    /// of it (see [`super::score`]); otherwise the generic path scores each
    /// prompt + continuation whole, in batches of `batch_size`.
    pub fn score_requests(&self, requests: &[ScoreRequest]) -> Result<Vec<Score>> {
        let max = self.model.llama.rope.max_positions();
        let mut seqs = Vec::with_capacity(requests.len());
        for r in requests {
            let p = self.model.encode_pieces(&r.prompt)?;
            let c = self.model.encode_pieces(&r.continuation)?;
            if p.is_empty() {
                return Err(Error::Other(
                    "a scoring prompt encodes to no tokens (add BOS or text)".into(),
                ));
            }
            self.model.check_ids(&p)?;
            self.model.check_ids(&c)?;
            if p.len() + c.len() > max {
                return Err(Error::Other(format!(
                    "{} prompt + {} continuation tokens exceed the model's {max} positions",
                    p.len(),
                    c.len()
                )));
            }
            seqs.push((p, c));
        }
        #[cfg(feature = "flex")]
        if let Some(host) = self.host_model() {
            let (scores, counts) =
                super::score::score_shared(&host, self.model.config.num_hidden_layers, &seqs);
            self.add_counts(counts);
            return Ok(scores);
        }
        self.score_generic(&seqs)
    }

    /// The generic scorer: each prompt + continuation as one sequence through
    /// the model's batched forward, `batch_size` sequences per batch.
    pub fn score_generic(&self, seqs: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Score>> {
        self.model.llama.check_generic()?;
        let mut out = Vec::with_capacity(seqs.len());
        let mut counts = super::score::ScoreCounts::default();
        for (i, (p, c)) in seqs.iter().enumerate() {
            if i == 0 || seqs[i - 1].0 != *p {
                counts.context_tokens += p.len() as u64;
            }
            counts.continuation_tokens += c.len() as u64;
        }
        for chunk in seqs.chunks(self.batch_size) {
            let whole: Vec<Vec<u32>> = chunk
                .iter()
                .map(|(p, c)| p.iter().chain(c).copied().collect())
                .collect();
            let lp = self.model.llama.token_logprobs(&whole, &self.model.device);
            for (row, (_, c)) in lp.iter().zip(chunk) {
                let tail = &row[row.len() - c.len()..];
                out.push(Score {
                    sum_logprob: tail.iter().map(|x| *x as f64).sum(),
                    tokens: c.len(),
                });
            }
        }
        self.add_counts(counts);
        Ok(out)
    }
}

/// Each row's argmax of `logits` `[rows, vocab]`, computed on the device: only
/// the ids are read back.
fn device_argmax<B: Backend>(logits: Tensor<B, 2>) -> Result<Vec<u32>> {
    let ids: Vec<i64> = logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .to_vec()
        .map_err(|e| Error::Other(format!("reading the greedy token ids: {e:?}")))?;
    Ok(ids.into_iter().map(|i| i as u32).collect())
}

fn rows_of<B: Backend>(logits: Tensor<B, 2>) -> Result<Vec<Vec<f32>>> {
    let [b, v] = logits.dims();
    let flat: Vec<f32> = logits
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| Error::Other(format!("reading logits: {e:?}")))?;
    Ok((0..b).map(|i| flat[i * v..(i + 1) * v].to_vec()).collect())
}

impl<B: Backend> Generator for Engine<B> {
    fn generate_each(
        &mut self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
        done: &mut dyn FnMut(usize, &Completion),
    ) -> sdft_core::Result<Vec<Completion>> {
        self.generate_with(requests, params, done)
            .map_err(|e| sdft_core::Error::backend("generation", e))
    }

    fn count_tokens(&self, prompt: &sdft_core::Prompt) -> Option<usize> {
        self.model.encode_pieces(prompt).ok().map(|ids| ids.len())
    }

    fn context_length(&self) -> Option<usize> {
        Some(self.model.llama.rope.max_positions())
    }

    fn count_tokens_capped(&self, prompt: &sdft_core::Prompt, cap: usize) -> Option<usize> {
        self.model.tokenizer.count_pieces_capped(prompt, cap).ok()
    }
}

impl<B: Backend> Scorer for Engine<B> {
    fn score(&mut self, requests: &[ScoreRequest]) -> sdft_core::Result<Vec<Score>> {
        self.score_requests(requests)
            .map_err(|e| sdft_core::Error::backend("scoring", e))
    }
}

impl<B: Backend> sdft_core::GenerateScore for Engine<B> {
    fn as_generator(&mut self) -> &mut dyn Generator {
        self
    }
    fn as_scorer(&mut self) -> &mut dyn Scorer {
        self
    }
    fn as_distributions(&mut self) -> Option<&mut dyn sdft_core::Distributions> {
        Some(self)
    }
    fn scored_tokens(&self) -> u64 {
        self.score_counts().tokens()
    }
}
