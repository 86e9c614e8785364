//! # sdft-openai
//!
//! sdft-core's [`Generator`](sdft_core::Generator) and [`Scorer`](sdft_core::Scorer)
//! over the OpenAI-compatible completions API that vLLM, SGLang, TGI and llama.cpp's
//! `llama-server` serve, so distillation and evaluation run unchanged on a serving
//! cluster (`sdft generate|distill|eval run --generator openai:http://HOST:PORT/v1
//! --served-model NAME --concurrency N`; see docs/serving.md).
//!
//! - Prompts are rendered locally by our templates and sent as text
//!   ([`SpecialText::render`] says how BOS/EOS markers are written).
//! - Sampling maps to `temperature`, `top_p`, `top_k`, `max_tokens`, `stop`, `seed`
//!   (the row's own seed, [`row_seed`]) and the repetition penalty
//!   ([`request_body`]).
//! - [`Client::post`] retries connection errors, time-outs, 408, 429 (with
//!   `Retry-After`), 5xx and cut-short bodies with exponential backoff, and fails at
//!   once, naming the row, on other 4xx answers and on answers that are not JSON.
//! - [`GeneratorSpec`]: where a stage generates, the in-process engine (sdft-model)
//!   or a server, opened as one [`StageGenerator`] that is a `Generator` and a
//!   `Scorer` either way, and the settings every output records for it.
//! - The API key comes from `SDFT_OPENAI_API_KEY` or `OPENAI_API_KEY` and is never
//!   logged.
//!
//! ```
//! use sdft_core::{Prompt, PromptPiece, SamplingParams};
//! use sdft_openai::{request_body, ServerSpec, SpecialText};
//!
//! // Where a stage would generate (`GeneratorSpec::served(model, server)` opens it).
//! let server = ServerSpec::parse("openai:http://127.0.0.1:8000/v1", Some("qwen"), 4)?;
//! assert_eq!(server.describe(), "openai:http://127.0.0.1:8000/v1 (qwen)");
//! // A prompt with BOS/EOS markers becomes the text the server tokenizes: the
//! // leading BOS is the server's own, later markers become the tokens' text.
//! let special = SpecialText { bos: "<s>".into(), eos: "</s>".into() };
//! let prompt = Prompt::new(vec![
//!     PromptPiece::Bos,
//!     PromptPiece::Text("Q: 2+2?".into()),
//!     PromptPiece::Eos,
//! ]);
//! assert_eq!(special.render(&prompt), "Q: 2+2?</s>");
//! // The row's sampling as the completions request body (its own seed per row).
//! let body = request_body("Q: 2+2?", "row-1", &SamplingParams::greedy().with_max_new_tokens(8));
//! assert_eq!(body["max_tokens"], 8);
//! assert_eq!(body["temperature"], 0.0);
//! # Ok::<(), sdft_openai::Error>(())
//! ```

mod client;
mod error;
mod generator;
mod scorer;
mod spec;

pub use client::{Client, RetryPolicy, API_KEY_VARS};
pub use error::{Error, Result};
pub use generator::{parse_completion, request_body, row_seed, OpenAiGenerator, SpecialText};
pub use scorer::{sum_echoed, OpenAiScorer};
pub use spec::{GeneratorSpec, Served, ServedAdapter, ServerSpec, StageGenerator};
