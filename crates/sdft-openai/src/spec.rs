//! [`GeneratorSpec`]: where a stage generates and scores, the in-process engine or
//! an OpenAI-compatible server, opened as one [`StageGenerator`]. Prompts are
//! rendered by our templates either way, with the local model's tokenizer (which
//! also counts prompt tokens and gives the BOS/EOS texts); the settings recorded
//! for an output name the model (`model_sha256`, `adapter_sha256`, `dtype`) and,
//! when served, the server (`generator`, `served_model`).

use sdft_core::provenance::Settings;
use sdft_core::{Completion, GenerationRequest, Generator, Prompt, SamplingParams};
use sdft_core::{Distributions, GenerateScore, Score, ScoreRequest, Scorer};
use sdft_model::backend::DefaultBackend;
use sdft_model::{Engine, ModelSpec, TokenizerInfo};

use crate::{Client, Error, OpenAiGenerator, OpenAiScorer, Result, RetryPolicy, SpecialText};

/// An OpenAI-compatible server and the model it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// `http://HOST:PORT/v1`.
    pub base_url: String,
    /// The served model's name (vLLM's --served-model-name, llama-server's --alias).
    pub model: String,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl ServerSpec {
    /// From `openai:http://HOST:PORT/v1` and the served model's name.
    pub fn parse(generator: &str, served_model: Option<&str>, concurrency: usize) -> Result<Self> {
        let base_url = Client::parse_spec(generator)?;
        let model = served_model.ok_or_else(|| Error::NoServedModel {
            spec: generator.to_string(),
        })?;
        Ok(ServerSpec {
            base_url,
            model: model.to_string(),
            concurrency: concurrency.max(1),
        })
    }

    /// `openai:URL (MODEL)`, for messages (no API key).
    pub fn describe(&self) -> String {
        format!("openai:{} ({})", self.base_url, self.model)
    }
}

/// Where a stage generates: a local model ([`ModelSpec`]) run in-process with
/// `batch_size` rows per step, or the same model's tokenizer in front of a server.
#[derive(Debug, Clone)]
pub struct GeneratorSpec {
    pub model: ModelSpec,
    pub server: Option<ServerSpec>,
    pub batch_size: usize,
}

impl GeneratorSpec {
    /// In-process, `batch_size` rows per step.
    pub fn local(model: ModelSpec, batch_size: usize) -> Self {
        GeneratorSpec {
            model,
            server: None,
            batch_size: batch_size.max(1),
        }
    }

    /// On `server` (refuses an adapter: a server serves its own weights).
    pub fn served(model: ModelSpec, server: ServerSpec) -> Result<Self> {
        if let Some(a) = &model.adapter {
            return Err(Error::AdapterOnServer {
                adapter: a.display().to_string(),
            });
        }
        Ok(GeneratorSpec {
            model,
            server: Some(server),
            batch_size: 1,
        })
    }

    /// The settings an output made through this generator records: the model's
    /// ([`ModelSpec::settings`]) and, when served, `generator` and `served_model`
    /// instead of `dtype` (the server's business), so that a rerun elsewhere is
    /// refused.
    pub fn settings(&self) -> Result<Settings> {
        let mut s = self.model.settings()?;
        if let Some(server) = &self.server {
            s = s
                .with("generator", format!("openai:{}", server.base_url))
                .with("served_model", &server.model);
            s.remove("dtype");
        }
        Ok(s)
    }

    /// Loads the model (or, when served, only its tokenizer) and connects.
    pub fn open(&self) -> Result<StageGenerator> {
        let Some(server) = &self.server else {
            let engine = Engine::new(self.model.load()?, self.batch_size);
            return Ok(StageGenerator::Local(Box::new(engine)));
        };
        let tokenizer = self.model.tokenizer()?;
        let s = tokenizer.special_texts();
        let special = SpecialText {
            bos: s.bos,
            eos: s.eos,
        };
        let client = Client::new(&server.base_url, &server.model, RetryPolicy::default());
        tracing::info!(url = %server.base_url, model = %server.model, concurrency = server.concurrency, "generating on a server");
        Ok(StageGenerator::Served(Box::new(Served {
            generator: OpenAiGenerator::new(client.clone(), server.concurrency, special.clone()),
            scorer: OpenAiScorer { client, special },
            tokenizer,
            spec: server.clone(),
        })))
    }
}

/// An opened [`GeneratorSpec`]: a `Generator` and `Scorer` either way.
pub enum StageGenerator {
    Local(Box<Engine<DefaultBackend>>),
    Served(Box<Served>),
}

/// A server's generator and scorer, with the local tokenizer that counts prompt
/// tokens.
pub struct Served {
    pub spec: ServerSpec,
    generator: OpenAiGenerator,
    scorer: OpenAiScorer,
    tokenizer: TokenizerInfo,
}

impl StageGenerator {
    /// The in-process engine, if that is what runs.
    pub fn engine(&mut self) -> Option<&mut Engine<DefaultBackend>> {
        match self {
            StageGenerator::Local(e) => Some(e),
            StageGenerator::Served(_) => None,
        }
    }

    fn gen_ref(&self) -> &dyn Generator {
        match self {
            StageGenerator::Local(e) => e.as_ref(),
            StageGenerator::Served(s) => s.as_ref(),
        }
    }

    fn gen_mut(&mut self) -> &mut dyn Generator {
        match self {
            StageGenerator::Local(e) => e.as_mut(),
            StageGenerator::Served(s) => s.as_mut(),
        }
    }
}

impl Generator for StageGenerator {
    fn generate(
        &mut self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
    ) -> sdft_core::Result<Vec<Completion>> {
        self.gen_mut().generate(requests, params)
    }

    fn generate_each(
        &mut self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
        done: &mut dyn FnMut(usize, &Completion),
    ) -> sdft_core::Result<Vec<Completion>> {
        self.gen_mut().generate_each(requests, params, done)
    }

    fn count_tokens(&self, prompt: &Prompt) -> Option<usize> {
        self.gen_ref().count_tokens(prompt)
    }

    fn context_length(&self) -> Option<usize> {
        self.gen_ref().context_length()
    }

    fn count_tokens_capped(&self, prompt: &Prompt, cap: usize) -> Option<usize> {
        self.gen_ref().count_tokens_capped(prompt, cap)
    }
}

impl Scorer for StageGenerator {
    fn score(&mut self, requests: &[ScoreRequest]) -> sdft_core::Result<Vec<Score>> {
        match self {
            StageGenerator::Local(e) => e.score(requests),
            StageGenerator::Served(s) => s.score(requests),
        }
    }
}

impl GenerateScore for StageGenerator {
    fn as_generator(&mut self) -> &mut dyn Generator {
        self
    }
    fn as_scorer(&mut self) -> &mut dyn Scorer {
        self
    }
    fn as_distributions(&mut self) -> Option<&mut dyn Distributions> {
        match self {
            StageGenerator::Local(e) => Some(e.as_mut()),
            StageGenerator::Served(_) => None,
        }
    }
    fn scored_tokens(&self) -> u64 {
        match self {
            StageGenerator::Local(e) => e.score_counts().tokens(),
            StageGenerator::Served(_) => 0,
        }
    }
}

impl Generator for Served {
    fn generate(
        &mut self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
    ) -> sdft_core::Result<Vec<Completion>> {
        self.generator.generate(requests, params)
    }

    fn generate_each(
        &mut self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
        done: &mut dyn FnMut(usize, &Completion),
    ) -> sdft_core::Result<Vec<Completion>> {
        self.generator.generate_each(requests, params, done)
    }

    fn count_tokens(&self, prompt: &Prompt) -> Option<usize> {
        self.tokenizer
            .encode_pieces(prompt)
            .ok()
            .map(|ids| ids.len())
    }
}

impl Scorer for Served {
    /// Scores on the server; a failure says which servers can score and what to
    /// do instead.
    fn score(&mut self, requests: &[ScoreRequest]) -> sdft_core::Result<Vec<Score>> {
        self.scorer.score(requests).map_err(|e| {
            sdft_core::Error::backend(
                format!(
                    "scoring log-likelihoods needs a server that echoes prompt \
                     log-probabilities (`echo` with `logprobs` on /v1/completions: vLLM and \
                     SGLang do; llama-server and TGI cannot score); {} could not score, so \
                     score in-process (without --generator)",
                    self.spec.describe()
                ),
                e,
            )
        })
    }
}
