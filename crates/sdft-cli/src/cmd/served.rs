//! `--generator openai:http://HOST:PORT/v1 --served-model NAME --concurrency N`:
//! where a stage generates (and scores), mapped onto the library's
//! [`GeneratorSpec`] (in-process without `--generator`). See docs/serving.md.

use anyhow::Result;
use clap::Args;
use sdft_openai::{GeneratorSpec, ServedAdapter, ServerSpec};

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
    /// The LoRA adapter the server applies (with --adapter DIR, its local copy):
    /// vLLM/SGLang, the LoRA module's name (sent as `model`); llama-server, the
    /// adapter's id in GET /lora-adapters (0 for the first --lora), sent in each
    /// request's `lora` field with scale 1 (docs/scale-out.md).
    #[arg(long, value_name = "NAME|ID", requires = "generator")]
    pub served_adapter: Option<String>,
    /// Requests in flight at once on the server.
    #[arg(long, default_value_t = 8, value_parser = positive, requires = "generator")]
    pub concurrency: usize,
}

impl GeneratorArgs {
    /// The model of `load`, in-process with `batch_size` rows per step or on the
    /// server (an adapter only as `--served-adapter`, which the server applies).
    pub fn spec(&self, load: &LoadArgs, batch_size: usize) -> Result<GeneratorSpec> {
        let model = load.spec()?;
        Ok(match &self.generator {
            None => GeneratorSpec::local(model, batch_size),
            Some(g) => {
                let server = ServerSpec::parse(g, self.served_model.as_deref(), self.concurrency)?
                    .with_adapter(self.served_adapter.as_deref().map(ServedAdapter::parse));
                GeneratorSpec::served(model, server)?
            }
        })
    }
}
