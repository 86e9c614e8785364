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
    /// The LoRA adapter the server applies to every request, if any.
    pub adapter: Option<ServedAdapter>,
}

/// A LoRA adapter a server loaded, as requests choose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServedAdapter {
    /// vLLM (`--lora-modules NAME=DIR`) and SGLang (`--lora-paths NAME=DIR`):
    /// the module's name, sent as the request's `model`.
    Module(String),
    /// llama-server (`--lora-scaled FILE.gguf:0 --cache-ram 0`): the adapter's id as
    /// `GET /lora-adapters` lists it (0 for the first `--lora`), sent in the
    /// request's `lora` field with scale 1; the server's other adapters get 0.
    LlamaServer(u32),
}

impl ServedAdapter {
    /// A number is a llama-server adapter id, anything else a module name.
    pub fn parse(s: &str) -> Self {
        match s.parse::<u32>() {
            Ok(id) => ServedAdapter::LlamaServer(id),
            Err(_) => ServedAdapter::Module(s.to_string()),
        }
    }

    /// As `--served-adapter` takes it.
    pub fn as_arg(&self) -> String {
        match self {
            ServedAdapter::Module(n) => n.clone(),
            ServedAdapter::LlamaServer(id) => id.to_string(),
        }
    }
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
            adapter: None,
        })
    }

    /// This server with `adapter` applied to every request.
    pub fn with_adapter(mut self, adapter: Option<ServedAdapter>) -> Self {
        self.adapter = adapter;
        self
    }

    /// `openai:URL (MODEL)`, or `openai:URL (MODEL + adapter A)`, for messages
    /// (no API key).
    pub fn describe(&self) -> String {
        match &self.adapter {
            None => format!("openai:{} ({})", self.base_url, self.model),
            Some(a) => format!(
                "openai:{} ({} + adapter {})",
                self.base_url,
                self.model,
                a.as_arg()
            ),
        }
    }

    /// The client for this server: the request's `model` is the adapter's
    /// module name when one is served so, else the model's; a llama-server
    /// adapter rides in the `lora` field.
    pub fn client(&self) -> Client {
        let model = match &self.adapter {
            Some(ServedAdapter::Module(name)) => name.as_str(),
            _ => self.model.as_str(),
        };
        let client = Client::new(&self.base_url, model, RetryPolicy::default());
        match &self.adapter {
            Some(ServedAdapter::LlamaServer(id)) => {
                client.with_field("lora", serde_json::json!([{ "id": id, "scale": 1.0 }]))
            }
            _ => client,
        }
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

    /// On `server`. A model with an adapter needs the server to apply it
    /// (`server.adapter`); the local adapter is then the copy whose hash the
    /// settings record, and it must fit the local model (which the server is
    /// to serve: its tokenizer renders the prompts).
    pub fn served(model: ModelSpec, server: ServerSpec) -> Result<Self> {
        match (&model.adapter, &server.adapter) {
            (Some(a), None) => {
                return Err(Error::AdapterOnServer {
                    adapter: a.display().to_string(),
                })
            }
            (None, Some(s)) => return Err(Error::ServedAdapterWithoutCopy { served: s.as_arg() }),
            (Some(dir), Some(_)) => {
                let files = sdft_model::ModelFiles::open(&model.path()?)?;
                let config = &files.config;
                sdft_model::model::lora::peft::read(dir, config.num_hidden_layers, &|t| {
                    sdft_model::model::lora::peft::target_dims(config, t)
                })?;
            }
            (None, None) => {}
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
            if let Some(a) = &server.adapter {
                s.set("served_adapter", a.as_arg());
            }
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
        let client = server.client();
        tracing::info!(server = %server.describe(), concurrency = server.concurrency, "generating on a server");
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
