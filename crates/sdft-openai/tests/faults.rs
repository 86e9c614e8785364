//! The client against a small in-process fake server on 127.0.0.1: 500s, 429 with
//! Retry-After, a stalled response, a truncated body, garbage JSON, a 400 naming the
//! row. Each case is bounded (a handful of connections, short time-outs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sdft_core::{FinishReason, GenerationRequest, Generator, SamplingParams};
use sdft_openai::{Client, OpenAiGenerator, RetryPolicy, SpecialText};
use serde_json::Value;

const OK: &str = r#"{"choices":[{"text":" 42","index":0,"finish_reason":"stop"}],"usage":{"completion_tokens":3}}"#;

/// Serves one scripted answer per connection (the last one repeats); returns the base
/// URL and the request bodies it saw.
fn fake(script: Vec<String>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate().take(40) {
            let Ok(mut s) = conn else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            seen2
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            let answer = &script[n.min(script.len() - 1)];
            if answer == "STALL" {
                std::thread::sleep(Duration::from_millis(1500));
                continue;
            }
            let _ = s.write_all(answer.as_bytes());
        }
    });
    (url, seen)
}

fn http(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn gen(url: &str, attempts: u32) -> OpenAiGenerator {
    let retry = RetryPolicy {
        attempts,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(2),
        timeout: Duration::from_millis(500),
    };
    OpenAiGenerator::new(Client::new(url, "served", retry), 1, SpecialText::default())
}

fn run(g: &mut OpenAiGenerator) -> sdft_core::Result<Vec<sdft_core::Completion>> {
    let reqs = [GenerationRequest::text("row-7", "Q: 6*7?")];
    g.generate(&reqs, &SamplingParams::greedy().with_max_new_tokens(8))
}

#[test]
fn retries_500s_then_succeeds() {
    let e500 = http("500 Internal Server Error", "", r#"{"error":"busy"}"#);
    let (url, seen) = fake(vec![e500.clone(), e500, http("200 OK", "", OK)]);
    let out = run(&mut gen(&url, 4)).unwrap();
    assert_eq!(out[0].text, " 42");
    assert_eq!(out[0].tokens, 3);
    assert_eq!(out[0].finish_reason, FinishReason::Eos);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0]["model"], "served");
    assert_eq!(seen[0]["temperature"], 0.0);
    assert_eq!(seen[0]["max_tokens"], 8);
    assert_eq!(
        seen[0]["seed"], seen[2]["seed"],
        "a retry asks for the same seed"
    );
}

#[test]
fn gives_up_after_the_attempts_naming_the_row() {
    let (url, seen) = fake(vec![http("503 Service Unavailable", "", "down")]);
    let err = run(&mut gen(&url, 3)).unwrap_err().to_string();
    assert!(
        err.contains("row row-7") && err.contains("3 times") && err.contains("503"),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[test]
fn honours_retry_after_on_429() {
    let (url, _) = fake(vec![
        http("429 Too Many Requests", "Retry-After: 1\r\n", "slow down"),
        http("200 OK", "", OK),
    ]);
    let t = Instant::now();
    let out = run(&mut gen(&url, 3)).unwrap();
    assert_eq!(out[0].text, " 42");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
}

#[test]
fn a_stalled_response_times_out_and_is_retried() {
    let (url, _) = fake(vec!["STALL".into(), http("200 OK", "", OK)]);
    let t = Instant::now();
    let out = run(&mut gen(&url, 3)).unwrap();
    assert_eq!(out[0].text, " 42");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_truncated_body_is_retried() {
    let full = http("200 OK", "", OK);
    let cut = full[..full.len() - 10].to_string();
    let (url, seen) = fake(vec![cut, full]);
    let out = run(&mut gen(&url, 3)).unwrap();
    assert_eq!(out[0].text, " 42");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn garbage_json_fails_at_once_naming_the_row() {
    let (url, seen) = fake(vec![http("200 OK", "", "<html>proxy error</html>")]);
    let err = run(&mut gen(&url, 3)).unwrap_err().to_string();
    assert!(
        err.contains("row row-7") && err.contains("not JSON") && err.contains("proxy error"),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn a_400_fails_at_once_naming_the_row() {
    let body = r#"{"error":{"message":"max_tokens too large"}}"#;
    let (url, seen) = fake(vec![http("400 Bad Request", "", body)]);
    let err = run(&mut gen(&url, 5)).unwrap_err().to_string();
    assert!(
        err.contains("row row-7") && err.contains("400") && err.contains("max_tokens too large"),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// The first draw of `sdft_core::rng::SplitMix64::for_row` (pinned in sdft-core's
/// `tests/rng.rs`), low 31 bits.
#[test]
fn the_row_seed_is_the_first_draw_of_the_row_stream() {
    for (seed, id, want) in [
        (42, "row-1", 0x20d8_fce7),
        (7, "gsm8k-00012", 0x3e95_df5f),
        (0, "", 0x06af_665b),
    ] {
        assert_eq!(sdft_openai::row_seed(seed, id), want);
    }
}

#[test]
fn results_come_back_in_request_order_whatever_the_concurrency() {
    let (url, _) = fake(vec![http("200 OK", "", OK)]);
    let mut g = gen(&url, 2);
    g.concurrency = 4;
    let reqs: Vec<_> = (0..6)
        .map(|i| GenerationRequest::text(format!("r{i}"), "x"))
        .collect();
    let mut order = Vec::new();
    let out = g
        .generate_each(&reqs, &SamplingParams::greedy(), &mut |i, _| order.push(i))
        .unwrap();
    assert_eq!(out.len(), 6);
    order.sort();
    assert_eq!(order, (0..6).collect::<Vec<_>>());
}

/// The scorer against a vLLM-shaped echo answer (vLLM's `/v1/completions` with
/// `echo: true, logprobs: 0`: `choices[0].logprobs` holds `tokens`,
/// `token_logprobs` (null for the first prompt token) and character
/// `text_offset`s of the whole echoed text): only the tokens that start inside the
/// continuation are summed, and the request asks for the echo of prompt +
/// continuation with one new token.
#[test]
fn scorer_sums_the_echoed_continuation_tokens() {
    // "Q: hi\nA:" is 8 characters; the continuation " yes" starts at offset 8.
    let answer = r#"{"choices":[{"text":"Q: hi\nA: yes.","index":0,"logprobs":{
        "tokens":["Q",":"," hi","\n","A",":"," yes","."],
        "token_logprobs":[null,-1.5,-2.0,-0.5,-0.25,-0.125,-0.75,-3.0],
        "text_offset":[0,1,2,5,6,7,8,12],
        "top_logprobs":null}}]}"#;
    let (url, seen) = fake(vec![http("200 OK", "", answer)]);
    let retry = RetryPolicy {
        attempts: 1,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        timeout: Duration::from_millis(2000),
    };
    let mut s = sdft_openai::OpenAiScorer {
        client: Client::new(&url, "served", retry),
        special: SpecialText::default(),
    };
    use sdft_core::Scorer;
    let got = s
        .score(&[sdft_core::ScoreRequest {
            prompt: sdft_core::Prompt::raw("Q: hi\nA:"),
            continuation: sdft_core::Prompt::raw(" yes"),
        }])
        .unwrap();
    // " yes" (offset 8) is inside [8, 12); "." (offset 12, the generated token) is not.
    assert_eq!(got[0].tokens, 1);
    assert_eq!(got[0].sum_logprob, -0.75);
    let body = &seen.lock().unwrap()[0];
    assert_eq!(body["prompt"], "Q: hi\nA: yes");
    assert_eq!(
        (body["echo"].as_bool(), body["max_tokens"].as_u64()),
        (Some(true), Some(1))
    );
    // A server that answers without prompt log-probabilities (llama-server) is an
    // error naming the row and what is missing.
    let (url, _) = fake(vec![http(
        "200 OK",
        "",
        r#"{"choices":[{"text":"x","index":0,"finish_reason":"length"}]}"#,
    )]);
    s.client = Client::new(
        &url,
        "served",
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        },
    );
    let err = s
        .score(&[sdft_core::ScoreRequest {
            prompt: sdft_core::Prompt::raw("Q"),
            continuation: sdft_core::Prompt::raw(" a"),
        }])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("score request 0") && err.contains("echo prompt log-probabilities"),
        "{err}"
    );
}

/// A served adapter as each engine takes it: a vLLM/SGLang module by name (the
/// request's `model`), a llama-server adapter by id (`lora`, scale 1).
#[test]
fn a_served_adapter_is_chosen_per_request() {
    use sdft_openai::{ServedAdapter, ServerSpec};
    for (arg, model, lora) in [
        ("sdft", "sdft", Value::Null),
        ("1", "served", serde_json::json!([{"id": 1, "scale": 1.0}])),
    ] {
        let (url, seen) = fake(vec![http("200 OK", "", OK)]);
        let spec = ServerSpec::parse(&format!("openai:{url}"), Some("served"), 1)
            .unwrap()
            .with_adapter(Some(ServedAdapter::parse(arg)));
        assert!(spec.describe().contains(&format!("+ adapter {arg}")));
        let mut g = OpenAiGenerator::new(spec.client(), 1, SpecialText::default());
        run(&mut g).unwrap();
        let body = seen.lock().unwrap()[0].clone();
        assert_eq!(body["model"], model, "{arg}");
        assert_eq!(body["lora"], lora, "{arg}");
    }
}
