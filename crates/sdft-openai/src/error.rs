//! The error type of sdft-openai.

/// What went wrong talking to the server. Every variant that concerns one request
/// names its row id.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--generator` value that is not `openai:http(s)://HOST[:PORT]/PATH`.
    #[error("generator `{spec}`: expected `openai:http://HOST:PORT/v1` (or https)")]
    Spec { spec: String },
    /// A served model was asked for without its name.
    #[error("generator `{spec}`: give the served model's name (--served-model NAME: the name the server serves the model under)")]
    NoServedModel { spec: String },
    /// An adapter given without saying which of the server's adapters it is.
    #[error("adapter {adapter}: a server applies only the adapters it loaded: serve it (vLLM --lora-modules NAME=DIR, SGLang --lora-paths NAME=DIR, llama-server --lora-scaled FILE.gguf:0 --cache-ram 0, the GGUF from `sdft model export-lora`) and name it with --served-adapter, merge it (`sdft model merge`) and serve the merged model, or generate in-process")]
    AdapterOnServer { adapter: String },
    /// `--served-adapter` without the local copy that identifies it.
    #[error("served adapter {served}: give its local copy with --adapter DIR (hashed into the settings, and checked against the model)")]
    ServedAdapterWithoutCopy { served: String },
    /// Loading the local model (or its tokenizer) failed.
    #[error(transparent)]
    Model(#[from] sdft_model::Error),
    /// The server refused the request (a 4xx other than 408/429): not retried.
    #[error("row {row}: server answered {status} for POST {url}: {body}")]
    Rejected {
        row: String,
        url: String,
        status: u16,
        body: String,
    },
    /// Connection errors, time-outs, 429 or 5xx on every attempt.
    #[error("row {row}: POST {url} failed {attempts} times, last: {last}")]
    GaveUp {
        row: String,
        url: String,
        attempts: u32,
        last: String,
    },
    /// A 200 answer that is not the completions response expected.
    #[error("row {row}: unexpected response from {url}: {message}")]
    BadResponse {
        row: String,
        url: String,
        message: String,
    },
}

/// Result alias of sdft-openai.
pub type Result<T> = std::result::Result<T, Error>;

impl From<Error> for sdft_core::Error {
    fn from(e: Error) -> Self {
        sdft_core::Error::backend("openai-compatible server", e)
    }
}
