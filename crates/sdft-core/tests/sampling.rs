//! `SamplingBuilder`: a preset adjusted by flags, validated once when built.

use sdft_core::{SamplingBuilder, SamplingParams};

#[test]
fn presets_and_overrides() {
    let p = SamplingBuilder::default().build().unwrap();
    assert_eq!(p, SamplingParams::paper_default());
    let g = SamplingBuilder::preset("greedy").build().unwrap();
    assert_eq!(g.temperature, 0.0);
    let b = SamplingBuilder {
        top_p: Some(0.9),
        max_new_tokens: Some(64),
        stop: vec!["###".into()],
        seed: Some(7),
        ..Default::default()
    }
    .build()
    .unwrap();
    assert_eq!((b.top_p, b.max_new_tokens, b.seed), (0.9, 64, 7));
    assert_eq!(b.stop, ["###"]);
    // Under greedy decoding temperature, top-p and top-k are ignored.
    let g = SamplingBuilder {
        greedy: true,
        temperature: Some(0.7),
        max_new_tokens: Some(32),
        ..Default::default()
    }
    .build()
    .unwrap();
    assert_eq!((g.temperature, g.max_new_tokens), (0.0, 32));
}

#[test]
fn invalid_values_are_refused_naming_the_field() {
    let e = SamplingBuilder {
        top_p: Some(2.0),
        ..Default::default()
    }
    .build()
    .unwrap_err();
    assert!(e.to_string().contains("top_p"), "{e}");
    let e = SamplingBuilder::preset("creative").build().unwrap_err();
    assert!(e.to_string().contains("`paper` or `greedy`"), "{e}");
    let e = SamplingBuilder {
        stop: vec![String::new()],
        ..Default::default()
    }
    .build()
    .unwrap_err();
    assert!(e.to_string().contains("stop"), "{e}");
}
