//! The generation engine on SmolLM2-135M-Instruct: greedy decoding reproduces the
//! NumPy reference's continuation (KV cache and batching included), outputs do not
//! depend on batch size (greedy and sampled), stop strings and EOS end rows, and
//! scores equal the sum of per-token log-softmax of a full forward.

use std::path::PathBuf;

use sdft_core::{
    FinishReason, GenerationRequest, Prompt, PromptPiece, SamplingParams, ScoreRequest,
};
use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::{Engine, LoadOptions, Model};
use serde_json::Value;

fn model() -> Option<Model<DefaultBackend>> {
    let p = sdft_model::assets::cached_model(&sdft_model::assets::SMOLLM2_135M_INSTRUCT)?;
    Some(Model::load(&p, &LoadOptions::default(), &default_device()).unwrap())
}

fn chat(user: &str) -> String {
    format!("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
}

fn ids(v: &Value) -> Vec<u32> {
    let s = v
        .as_str()
        .map(|s| serde_json::from_str::<Value>(s).unwrap())
        .unwrap_or_else(|| v.clone());
    s.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn greedy_matches_the_reference_and_is_batch_independent() {
    let Some(model) = model() else { return };
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/smollm2_greedy.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut engine = Engine::new(model, 4);
    let prompt = golden["prompt_text"].as_str().unwrap();
    let reference = ids(&golden["generated_ids"]);
    let until_eos = ids(&golden["generated_ids_until_eos"]);

    // Until EOS, as a user gets it.
    let greedy = SamplingParams::greedy().with_max_new_tokens(20);
    let req = GenerationRequest::text("capital", prompt);
    let out = engine
        .generate_with(std::slice::from_ref(&req), &greedy, &mut |_, _| {})
        .unwrap();
    assert_eq!(
        out[0].text,
        golden["generated_text_until_eos"].as_str().unwrap()
    );
    assert_eq!(out[0].tokens, until_eos.len());
    assert_eq!(out[0].finish_reason, FinishReason::Eos);

    // All 20 steps with EOS not stopping: every token matches the reference, also
    // when the row shares a batch with other, shorter and longer, prompts.
    engine.stop_ids.clear();
    let others = [
        "Hi!",
        "Write a haiku about the sea, please, with many words in it.",
    ];
    let mut reqs = vec![req.clone()];
    reqs.extend(
        others
            .iter()
            .enumerate()
            .map(|(i, u)| GenerationRequest::text(format!("o{i}"), chat(u))),
    );
    let want = engine.model.tokenizer.decode(&reference, true).unwrap();
    for batch in [1, 3] {
        engine.batch_size = batch;
        let out = engine
            .generate_with(&reqs, &greedy, &mut |_, _| {})
            .unwrap();
        assert_eq!(out[0].text, want, "batch size {batch}");
        assert_eq!(out[0].tokens, 20);
        assert_eq!(out[0].finish_reason, FinishReason::Length);
    }
}

#[test]
fn outputs_do_not_depend_on_batch_size() {
    let Some(model) = model() else { return };
    let mut engine = Engine::new(model, 1);
    let users = [
        "What is 2 + 2?",
        "Name a fruit.",
        "Tell me a short story about a cat who learns to fly, in two sentences.",
        "Hello",
        "Why is the sky blue?",
    ];
    let reqs: Vec<GenerationRequest> = users
        .iter()
        .enumerate()
        .map(|(i, u)| GenerationRequest::text(format!("row-{i}"), chat(u)))
        .collect();
    for params in [
        SamplingParams::greedy().with_max_new_tokens(16),
        SamplingParams::paper_default()
            .with_max_new_tokens(16)
            .with_seed(7),
    ] {
        let mut runs = Vec::new();
        for batch in [1, 3, 16] {
            engine.batch_size = batch;
            let mut order = Vec::new();
            let out = engine
                .generate_with(&reqs, &params, &mut |i, _| order.push(i))
                .unwrap();
            assert_eq!(order.len(), reqs.len(), "every row reported once");
            runs.push(out);
        }
        for (i, r) in runs[0].iter().enumerate() {
            assert!(!r.text.is_empty(), "row {i}");
            assert_eq!(r, &runs[1][i], "row {i}: batch 1 vs 3 ({params:?})");
            assert_eq!(r, &runs[2][i], "row {i}: batch 1 vs 16 ({params:?})");
        }
    }
    // A different seed changes sampled text; the same seed repeats it.
    engine.batch_size = 4;
    let p = |seed| {
        SamplingParams::paper_default()
            .with_max_new_tokens(12)
            .with_seed(seed)
            .with_temperature(1.5)
    };
    let a = engine.generate_with(&reqs, &p(1), &mut |_, _| {}).unwrap();
    let b = engine.generate_with(&reqs, &p(1), &mut |_, _| {}).unwrap();
    let c = engine.generate_with(&reqs, &p(2), &mut |_, _| {}).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn stop_strings_end_rows_without_the_stop_text() {
    let Some(model) = model() else { return };
    let engine = Engine::new(model, 2);
    let req = GenerationRequest::text("s", chat("Count from 1 to 20, separated by commas."));
    let free = engine
        .generate_with(
            std::slice::from_ref(&req),
            &SamplingParams::greedy().with_max_new_tokens(40),
            &mut |_, _| {},
        )
        .unwrap();
    assert!(free[0].text.contains("5"), "{}", free[0].text);
    let stopped = engine
        .generate_with(
            std::slice::from_ref(&req),
            &SamplingParams::greedy()
                .with_max_new_tokens(40)
                .with_stop("5"),
            &mut |_, _| {},
        )
        .unwrap();
    let cut = free[0].text.find('5').unwrap();
    assert_eq!(stopped[0].text, free[0].text[..cut]);
    assert_eq!(stopped[0].finish_reason, FinishReason::Stop);
}

/// Stop strings are watched on incrementally decoded text (a few tokens' decoding
/// per step); the completions must be exactly what decoding the whole text after
/// every token gives: the free text cut at the earliest stop (`stop`), or right
/// after the earliest-ending match (`stop_after`). Stops are taken from the free
/// texts themselves, at many places: within a token, across token boundaries,
/// whitespace, non-ASCII, near the end.
#[test]
fn incremental_stops_cut_exactly_where_whole_text_decoding_does() {
    let Some(model) = model() else { return };
    let engine = Engine::new(model, 4);
    let reqs: Vec<GenerationRequest> = [
        "Count from 1 to 20, separated by commas.",
        "Écris une phrase en français sur les élèves, puis un emoji.",
        "Write a Python function that reverses a string, in a code block.",
        "List three colors, one per line.",
    ]
    .iter()
    .enumerate()
    .map(|(i, q)| GenerationRequest::text(format!("r{i}"), chat(q)))
    .collect();
    let base = SamplingParams::greedy().with_max_new_tokens(32);
    let free = engine.generate_with(&reqs, &base, &mut |_, _| {}).unwrap();
    let mut checked = 0;
    for (req, f) in reqs.iter().zip(&free) {
        let text = &f.text;
        let bounds: Vec<usize> = (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .collect();
        for w in [1usize, 6] {
            for start in bounds.iter().copied().skip(3).step_by(29) {
                let Some(&end) = bounds.iter().find(|&&e| e >= start + w) else {
                    continue;
                };
                let needle = &text[start..end];
                if needle.trim().is_empty() && w > 1 {
                    continue;
                }
                // `stop`: cut before the earliest occurrence.
                let p = base.clone().with_stop(needle);
                let got = engine
                    .generate_with(std::slice::from_ref(req), &p, &mut |_, _| {})
                    .unwrap();
                let cut = text.find(needle).unwrap();
                assert_eq!(got[0].text, text[..cut], "stop {needle:?} in {text:?}");
                assert_eq!(got[0].finish_reason, FinishReason::Stop);
                // `stop_after`: cut right after it, the match kept.
                let mut p = base.clone();
                p.stop_after = vec![regex_escape(needle)];
                let got = engine
                    .generate_with(std::slice::from_ref(req), &p, &mut |_, _| {})
                    .unwrap();
                assert_eq!(
                    got[0].text,
                    text[..cut + needle.len()],
                    "stop_after {needle:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 12, "only {checked} stops checked");
    // A stop that never occurs changes nothing.
    let p = base
        .clone()
        .with_stop("\n### never")
        .with_stop("<|im_end|>");
    let got = engine.generate_with(&reqs, &p, &mut |_, _| {}).unwrap();
    for (g, f) in got.iter().zip(&free) {
        assert_eq!(g.text, f.text);
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_punctuation() || c == ' ' {
                format!("\\x{:02x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[test]
fn scores_equal_the_full_forward_log_softmax() {
    let Some(model) = model() else { return };
    let engine = Engine::new(model, 3);
    let reqs: Vec<ScoreRequest> = [
        ("The capital of France is", " Paris."),
        ("2 + 2 =", " 4"),
        ("Once upon a time", ", there was a dragon who loved tea."),
    ]
    .iter()
    .map(|(p, c)| ScoreRequest {
        prompt: Prompt::raw(*p),
        continuation: Prompt::new(vec![PromptPiece::Text(c.to_string()), PromptPiece::Eos]),
    })
    .collect();
    let scores = engine.score_requests(&reqs).unwrap();
    for (r, s) in reqs.iter().zip(&scores) {
        let p = engine.model.encode_pieces(&r.prompt).unwrap();
        let c = engine.model.encode_pieces(&r.continuation).unwrap();
        let mut all = p.clone();
        all.extend(&c);
        let logits = engine
            .model
            .logits_all(std::slice::from_ref(&all))
            .unwrap()
            .remove(0);
        let mut want = 0f64;
        for (j, tok) in c.iter().enumerate() {
            let row = &logits[p.len() + j - 1];
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = m + row.iter().map(|x| (*x as f64 - m).exp()).sum::<f64>().ln();
            want += row[*tok as usize] as f64 - lse;
        }
        assert_eq!(s.tokens, c.len());
        assert!(
            (s.sum_logprob - want).abs() < 1e-3,
            "{} vs {want}",
            s.sum_logprob
        );
    }
    // "Paris" is far likelier than "London" after the prompt.
    let alt = ScoreRequest {
        prompt: Prompt::raw("The capital of France is"),
        continuation: Prompt::raw(" London."),
    };
    let london = engine.score_requests(&[alt]).unwrap()[0];
    assert!(scores[0].mean_logprob() > london.mean_logprob());
}

#[test]
fn stop_strings_of_one_special_token_stop_as_tokens() {
    let Some(model) = model() else { return };
    let engine = Engine::new(model, 1);
    assert_eq!(
        engine.model.tokenizer.special_token_id("<|im_start|>"),
        Some(1)
    );
    assert_eq!(engine.model.tokenizer.special_token_id("im_start"), None);
    let mut params = SamplingParams::greedy();
    params.stop = vec!["<|im_start|>".into(), "\nQ:".into()];
    let ids = engine.stop_ids_for(&params);
    let mut want = engine.stop_ids.clone();
    want.push(1);
    want.sort_unstable();
    want.dedup();
    assert_eq!(ids, want);
    // Ending at such a token leaves it out of the text, as EOS is: SmolLM2 answers
    // a chat turn and ends it with <|im_end|> (its EOS), never shown.
    params.stop = vec!["<|im_end|>".into()];
    params.max_new_tokens = 48;
    let c = engine
        .generate_with(
            &[GenerationRequest::new("a", Prompt::raw(chat("Say hello.")))],
            &params,
            &mut |_, _| {},
        )
        .unwrap();
    assert!(!c[0].text.contains("<|im_end|>"), "{:?}", c[0].text);
}
