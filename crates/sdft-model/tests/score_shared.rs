//! The engine's shared-prefix scorer on the CPU kernels (consecutive requests
//! with one prompt evaluate it once) against the generic scorer, which runs
//! each prompt + continuation whole through the burn forward: the same
//! log-likelihoods within float tolerance, for groups of different sizes,
//! prompt lengths, one-token and longer continuations, across batch limits.

#![cfg(feature = "flex")]

use sdft_core::{Prompt, ScoreRequest};
use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::{Engine, LoadOptions, Model};

fn request(prompt: &str, continuation: &str) -> ScoreRequest {
    ScoreRequest {
        prompt: Prompt::raw(prompt.to_string()),
        continuation: Prompt::raw(continuation.to_string()),
    }
}

#[test]
fn shared_prefix_scores_equal_the_generic_scorer() {
    let Some(path) = sdft_model::assets::cached_model(&sdft_model::assets::SMOLLM2_135M_INSTRUCT)
    else {
        return;
    };
    let model =
        Model::<DefaultBackend>::load(&path, &LoadOptions::default(), &default_device()).unwrap();
    let engine = Engine::new(model, 4);
    let long =
        "The following are multiple choice questions (with answers) about astronomy.\n\n".repeat(6);
    let mut reqs = vec![
        request(
            "Question: Which gas do plants take in?\nAnswer:",
            " carbon dioxide",
        ),
        request("Question: Which gas do plants take in?\nAnswer:", " oxygen"),
        request(
            "Question: Which gas do plants take in?\nAnswer:",
            " helium and a great deal of neon, mostly",
        ),
        request("Question: Which gas do plants take in?\nAnswer:", " A"),
        // Winogrande-style: one continuation per context.
        request(
            "Sarah was a much better surgeon than Maria so Sarah",
            " always got the easier cases.",
        ),
        request(
            "Sarah was a much better surgeon than Maria so Maria",
            " always got the easier cases.",
        ),
        request(&format!("{long}What is the Sun?\nAnswer:"), " B"),
        request(&format!("{long}What is the Sun?\nAnswer:"), " C"),
        request("Q: Tracy went home.\nA:", " no"),
    ];
    // The same prompt again after another one is a new group.
    reqs.push(request(
        "Question: Which gas do plants take in?\nAnswer:",
        " water vapour",
    ));
    let mut seqs = Vec::new();
    for r in &reqs {
        seqs.push((
            engine.model.encode_pieces(&r.prompt).unwrap(),
            engine.model.encode_pieces(&r.continuation).unwrap(),
        ));
    }
    let fast = engine.score_requests(&reqs).unwrap();
    let counts = engine.score_counts();
    let slow = engine.score_generic(&seqs).unwrap();
    assert_eq!(fast.len(), reqs.len());
    for (i, (f, s)) in fast.iter().zip(&slow).enumerate() {
        assert_eq!(f.tokens, s.tokens, "request {i}");
        let tol = 2e-3 * (1.0 + s.sum_logprob.abs());
        assert!(
            (f.sum_logprob - s.sum_logprob).abs() < tol,
            "request {i}: shared-prefix {} vs generic {}",
            f.sum_logprob,
            s.sum_logprob
        );
        assert!(f.sum_logprob < 0.0, "request {i}: {}", f.sum_logprob);
    }
    // Each shared prompt counted once: groups 0-3, 4, 5, 6-7, 8, 9.
    let firsts = [0usize, 4, 5, 6, 8, 9];
    let ctx: usize = firsts.iter().map(|&i| seqs[i].0.len()).sum();
    let cont: usize = seqs.iter().map(|s| s.1.len()).sum();
    assert_eq!(counts.context_tokens as usize, ctx);
    assert_eq!(counts.continuation_tokens as usize, cont);
    // Splitting the same requests over calls gives the same scores.
    let parts: Vec<_> = reqs
        .chunks(3)
        .flat_map(|c| engine.score_requests(c).unwrap())
        .collect();
    for (i, (a, b)) in parts.iter().zip(&fast).enumerate() {
        // Request 3 and 6 start a chunk away from their group's first request:
        // still the same prompt, so the same value.
        assert!(
            (a.sum_logprob - b.sum_logprob).abs() < 2e-3 * (1.0 + b.sum_logprob.abs()),
            "request {i}"
        );
    }
}
