//! The engine's whole next-token distributions (`Distributions`, used by the
//! drift benchmark), on SmolLM2-135M-Instruct: each row is a normalised
//! log-distribution, the CPU kernels' rows equal the generic burn forward's (an
//! independent path), and the entries of the continuation's tokens sum to the
//! log-likelihood the shared-prefix scorer gives. Skipped (`sdft_assets::skip`)
//! without the model.

#![cfg(feature = "flex")]

use sdft_core::{Prompt, ScoreRequest};
use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::{Engine, LoadOptions, Model};

#[test]
fn distributions_are_normalised_and_agree_with_the_scorer() {
    // `cached_model` records the skip ("smollm2") when the model is absent.
    let Some(path) = sdft_model::assets::cached_model(&sdft_model::assets::SMOLLM2_135M_INSTRUCT)
    else {
        return;
    };
    let model =
        Model::<DefaultBackend>::load(&path, &LoadOptions::default(), &default_device()).unwrap();
    let engine = Engine::new(model, 4);
    let req = ScoreRequest {
        prompt: Prompt::raw(
            "<|im_start|>user\nName a primary colour.<|im_end|>\n<|im_start|>assistant\n",
        ),
        continuation: Prompt::raw("Red is a primary colour, as are blue and yellow."),
    };
    let rows = engine.next_token_logprobs(&req).unwrap();
    let ids = engine.model.encode_pieces(&req.continuation).unwrap();
    assert_eq!(rows.len(), ids.len());
    let mut sum = 0f64;
    for (row, &id) in rows.iter().zip(&ids) {
        assert_eq!(row.len(), engine.model.config.vocab_size);
        let lse = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
        assert!(lse.abs() < 1e-4, "row not normalised: log-sum-exp {lse}");
        sum += row[id as usize] as f64;
    }
    // The generic burn forward gives the same distributions.
    let generic = engine.next_token_logprobs_generic(&req).unwrap();
    assert_eq!(generic.len(), rows.len());
    let mut worst = 0f32;
    for (a, b) in rows.iter().zip(&generic) {
        for (x, y) in a.iter().zip(b) {
            // Tokens the model gives at least e^-20 (below that both are noise
            // in the f32 logits' last bits and weigh nothing in a KL).
            if *y > -20.0 {
                worst = worst.max((x - y).abs());
            }
        }
    }
    assert!(
        worst < 2e-3,
        "kernels vs generic log-probabilities differ by {worst}"
    );
    let score = engine.score_requests(std::slice::from_ref(&req)).unwrap()[0];
    assert_eq!(score.tokens, ids.len());
    let rel = (sum - score.sum_logprob).abs() / score.sum_logprob.abs();
    assert!(
        rel < 2e-3,
        "distributions {sum} vs scorer {}",
        score.sum_logprob
    );
    // An empty continuation has no positions.
    let empty = ScoreRequest {
        prompt: req.prompt.clone(),
        continuation: Prompt::raw(""),
    };
    assert!(engine.next_token_logprobs(&empty).unwrap().is_empty());
}
