//! One POST with retries: exponential backoff on connection errors, time-outs, 408,
//! 429 (honouring `Retry-After`), 5xx and bodies cut short; a clear error naming the
//! row on any other 4xx.

use std::time::Duration;

use serde_json::Value;

use crate::{Error, Result};

/// The environment variables the API key is read from, first one set wins. The key
/// is sent as `Authorization: Bearer …` and never logged.
pub const API_KEY_VARS: [&str; 2] = ["SDFT_OPENAI_API_KEY", "OPENAI_API_KEY"];

/// How hard to retry one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included).
    pub attempts: u32,
    /// The wait after the first failure; doubled after each further one.
    pub base_delay: Duration,
    /// The longest wait between two attempts (a `Retry-After` is capped by it too).
    pub max_delay: Duration,
    /// Time-out of one attempt, from connecting to the end of the body.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 1 s doubling up to 60 s, 600 s per attempt (a long generation on a
    /// busy server is slow, not dead).
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            timeout: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(20);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// A connection to one server: base URL, served model name, key, retry policy.
#[derive(Debug, Clone)]
pub struct Client {
    base_url: String,
    model: String,
    api_key: Option<String>,
    retry: RetryPolicy,
    agent: ureq::Agent,
    /// Fields added to every request body (llama-server's per-request `lora`).
    fields: serde_json::Map<String, Value>,
}

impl Client {
    /// `base_url` is the API root (`http://HOST:PORT/v1`); `model` the served model's
    /// name (vLLM's `--served-model-name`, llama-server's `--alias`). The API key comes
    /// from [`API_KEY_VARS`].
    pub fn new(base_url: &str, model: &str, retry: RetryPolicy) -> Self {
        let api_key = API_KEY_VARS
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|k| !k.is_empty()));
        Client {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
            agent: ureq::AgentBuilder::new().timeout(retry.timeout).build(),
            retry,
            fields: serde_json::Map::new(),
        }
    }

    /// Adds `key: value` to every request body (after the caller's fields, so
    /// it wins over them).
    pub fn with_field(mut self, key: &str, value: Value) -> Self {
        self.fields.insert(key.to_string(), value);
        self
    }

    /// Parses `openai:http://HOST:PORT/v1` into the base URL.
    pub fn parse_spec(spec: &str) -> Result<String> {
        let url = spec.strip_prefix("openai:").ok_or_else(|| Error::Spec {
            spec: spec.to_string(),
        })?;
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .filter(|r| !r.is_empty() && !r.starts_with('/'));
        match rest {
            Some(_) => Ok(url.trim_end_matches('/').to_string()),
            None => Err(Error::Spec {
                spec: spec.to_string(),
            }),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// POSTs `body` (with `"model"` set) to `{base_url}/{path}` for row `row` and
    /// returns the parsed JSON answer.
    pub fn post(&self, path: &str, row: &str, mut body: Value) -> Result<Value> {
        body["model"] = Value::String(self.model.clone());
        for (k, v) in &self.fields {
            body[k] = v.clone();
        }
        let url = format!("{}/{}", self.base_url, path);
        let mut failures = 0u32;
        loop {
            let mut req = self
                .agent
                .post(&url)
                .set("Content-Type", "application/json");
            if let Some(k) = &self.api_key {
                req = req.set("Authorization", &format!("Bearer {k}"));
            }
            let (last, retry_after) = match req.send_string(&body.to_string()) {
                Ok(resp) => match resp.into_string() {
                    Ok(text) => {
                        return serde_json::from_str(&text).map_err(|e| Error::BadResponse {
                            row: row.to_string(),
                            url: url.clone(),
                            message: format!("not JSON ({e}): {}", snippet(&text)),
                        })
                    }
                    Err(e) => (format!("reading the body: {e}"), None),
                },
                Err(ureq::Error::Status(status, resp)) => {
                    let retry_after = resp
                        .header("Retry-After")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp.into_string().unwrap_or_default();
                    if !(status == 408 || status == 429 || status >= 500) {
                        return Err(Error::Rejected {
                            row: row.to_string(),
                            url,
                            status,
                            body: snippet(&text),
                        });
                    }
                    (format!("HTTP {status}: {}", snippet(&text)), retry_after)
                }
                Err(ureq::Error::Transport(t)) => (t.to_string(), None),
            };
            failures += 1;
            if failures >= self.retry.attempts {
                return Err(Error::GaveUp {
                    row: row.to_string(),
                    url,
                    attempts: failures,
                    last,
                });
            }
            let wait = retry_after
                .unwrap_or_else(|| self.retry.backoff(failures))
                .min(self.retry.max_delay);
            tracing::warn!(row, attempt = failures, ?wait, error = %last, "retrying");
            std::thread::sleep(wait);
        }
    }
}

/// The first 300 characters of a body, for error messages.
fn snippet(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}
