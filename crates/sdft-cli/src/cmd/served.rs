//! `--generator openai:http://HOST:PORT/v1 --served-model NAME --concurrency N`:
//! where a stage generates (and scores). Without `--generator` the model is loaded
//! in-process ([`Engine`]); with it, rows go to an OpenAI-compatible server
//! (sdft-openai) while prompts are still rendered here by our templates, with the
//! local model's tokenizer (which also counts prompt tokens). See docs/serving.md.

use anyhow::{bail, Result};
use clap::Args;
use sdft_core::provenance::Settings;
use sdft_core::{Completion, GenerationRequest, Generator, Prompt, SamplingParams};
use sdft_core::{Score, ScoreRequest, Scorer};
use sdft_model::backend::DefaultBackend;
use sdft_model::tokenizer::TokenizerInfo;
use sdft_model::Engine;
use sdft_openai::{Client, OpenAiGenerator, OpenAiScorer, RetryPolicy, SpecialText};

use super::model::LoadArgs;
use super::sampling::positive;

/// The generator flags shared by `sdft generate`, `sdft distill` and `sdft eval run`.
#[derive(Debug, Clone, Args)]
pub struct GeneratorArgs {
    /// Generate on an OpenAI-compatible server (vLLM, SGLang, TGI, llama-server)
    /// instead of in-process: `openai:http://HOST:PORT/v1`. `--model` still names
    /// the local model whose tokenizer and chat template render the prompts. The API
    /// key is read from SDFT_OPENAI_API_KEY or OPENAI_API_KEY.
    #[arg(long, value_name = "openai:URL")]
    pub generator: Option<String>,
    /// The served model's name (vLLM's --served-model-name, llama-server's --alias).
    #[arg(long, requires = "generator")]
    pub served_model: Option<String>,
    /// Requests in flight at once on the server.
    #[arg(long, default_value_t = 8, value_parser = positive, requires = "generator")]
    pub concurrency: usize,
}

/// A server connection, as parsed from the flags.
#[derive(Debug, Clone)]
pub struct ServedSpec {
    pub base_url: String,
    pub model: String,
    pub concurrency: usize,
}

impl GeneratorArgs {
    /// The server to use, or `None` for the in-process engine. Refuses an adapter
    /// (a server serves its own weights: serve the merged model instead).
    pub fn spec(&self, load: &LoadArgs) -> Result<Option<ServedSpec>> {
        let Some(g) = &self.generator else {
            return Ok(None);
        };
        let base_url = Client::parse_spec(g)?;
        let Some(model) = self.served_model.clone() else {
            bail!("--generator {g}: give --served-model NAME (the name the server serves the model under)");
        };
        if load.adapter.is_some() {
            bail!("--adapter cannot be applied to a served model: merge it (`sdft model merge`) and serve the merged model, or drop --generator");
        }
        Ok(Some(ServedSpec {
            base_url,
            model,
            concurrency: self.concurrency,
        }))
    }
}

impl ServedSpec {
    /// The settings recorded for outputs made through the server (`generator`,
    /// `served_model`), so that a rerun against another server or served model is
    /// refused; in-process outputs record neither. `dtype` is the server's business
    /// and is dropped.
    pub fn record(&self, settings: Settings) -> Settings {
        let mut s = settings
            .with("generator", format!("openai:{}", self.base_url))
            .with("served_model", &self.model);
        s.remove("dtype");
        s
    }

    /// The generator string as recorded: `openai:URL` (no API key).
    pub fn describe(&self) -> String {
        format!("openai:{} ({})", self.base_url, self.model)
    }
}

/// The in-process engine or a served model with the local tokenizer.
pub enum Backend {
    Local(Box<Engine<DefaultBackend>>),
    Served(Box<Served>),
}

/// A server's generator and scorer, and the local tokenizer that counts prompt
/// tokens.
pub struct Served {
    pub spec: ServedSpec,
    generator: OpenAiGenerator,
    scorer: OpenAiScorer,
    tokenizer: TokenizerInfo,
}

impl Backend {
    /// Loads the model in-process (`batch_size` rows per step), or connects to the
    /// server (loading only the tokenizer).
    pub fn open(load: &LoadArgs, spec: Option<ServedSpec>, batch_size: usize) -> Result<Backend> {
        let Some(spec) = spec else {
            return Ok(Backend::Local(Box::new(Engine::new(
                load.load()?,
                batch_size,
            ))));
        };
        let tokenizer = super::prompt_format::tokenizer(&load.model)?;
        let text = |id: Option<u32>| {
            id.and_then(|i| tokenizer.id_to_token(i))
                .unwrap_or_default()
        };
        let special = SpecialText {
            bos: text(tokenizer.bos_id()),
            eos: text(tokenizer.eos_id()),
        };
        let client = Client::new(&spec.base_url, &spec.model, RetryPolicy::default());
        tracing::info!(url = %spec.base_url, model = %spec.model, concurrency = spec.concurrency, "generating on a server");
        Ok(Backend::Served(Box::new(Served {
            generator: OpenAiGenerator::new(client.clone(), spec.concurrency, special.clone()),
            scorer: OpenAiScorer { client, special },
            tokenizer,
            spec,
        })))
    }

    pub fn generator(&mut self) -> &mut dyn Generator {
        match self {
            Backend::Local(e) => e.as_mut(),
            Backend::Served(s) => s.as_mut(),
        }
    }

    pub fn scorer(&mut self) -> &mut dyn Scorer {
        match self {
            Backend::Local(e) => e.as_mut(),
            Backend::Served(s) => s.as_mut(),
        }
    }

    /// The in-process engine, if that is what runs.
    pub fn engine(&self) -> Option<&Engine<DefaultBackend>> {
        match self {
            Backend::Local(e) => Some(e),
            Backend::Served(_) => None,
        }
    }

    /// For errors of a stage that scores log-likelihoods: what to do when the server
    /// cannot.
    pub fn scoring_context(&self, what: &str) -> String {
        match self {
            Backend::Local(_) => what.to_string(),
            Backend::Served(s) => format!(
                "{what} scores log-likelihoods, which needs a server that echoes prompt \
                 log-probabilities (`echo` with `logprobs` on /v1/completions: vLLM and SGLang \
                 do; llama-server and TGI cannot score); {} could not score, so run this \
                 without --generator (in-process)",
                s.spec.describe()
            ),
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
    fn score(&mut self, requests: &[ScoreRequest]) -> sdft_core::Result<Vec<Score>> {
        self.scorer.score(requests)
    }
}
