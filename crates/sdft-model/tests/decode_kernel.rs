//! The CPU decode kernel (`sdft_model::kernels::decode`, used by the engine on the
//! flex backend) against the generic burn forward of the same model: a prompt
//! prefilled as rows, then tokens decoded one at a time in two slots of different
//! lengths, give the logits that one full forward over each whole sequence gives
//! at the same positions. The generic forward is itself checked against the NumPy
//! reference in `logits.rs`.

#![cfg(feature = "flex")]

use sdft_model::backend::{default_device, DefaultBackend};
use sdft_model::kernels::decode::{forward, HostKv, Row, Scratch};
use sdft_model::kernels::pack::host_model;
use sdft_model::model::PaddedBatch;
use sdft_model::{LoadOptions, Model};

fn full_logits(model: &Model<DefaultBackend>, seq: &[u32]) -> Vec<Vec<f32>> {
    let logits = model
        .llama
        .forward_batch(&PaddedBatch::right_padded(&[seq.to_vec()]), &model.device);
    let [_, s, v] = logits.dims();
    let flat: Vec<f32> = logits.into_data().convert::<f32>().to_vec().unwrap();
    (0..s).map(|t| flat[t * v..(t + 1) * v].to_vec()).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn kernel_prefill_and_decode_match_the_generic_forward() {
    // `cached_model` records the skip ("smollm2") when the model is absent.
    let Some(path) = sdft_model::assets::cached_model(&sdft_model::assets::SMOLLM2_135M_INSTRUCT)
    else {
        return;
    };
    let model =
        Model::<DefaultBackend>::load(&path, &LoadOptions::default(), &default_device()).unwrap();
    let c = &model.config;
    let views = host_model(&model.llama, c, None).expect("flex f32 weights are readable");
    let seqs: Vec<Vec<u32>> = [
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\nThe capital",
        "Once upon a time there was a small robot who wanted to learn how to paint the sea",
    ]
    .iter()
    .map(|t| model.tokenizer.encode(t, false).unwrap())
    .collect();
    let prompt = [seqs[0].len() - 6, 9];
    let mut scratch = Scratch::default();
    let mut cache: Vec<HostKv> = (0..c.num_hidden_layers)
        .map(|_| HostKv::zeros(2, c.num_key_value_heads, 8, c.head_dim))
        .collect();
    for layer in cache.iter_mut() {
        layer.grow(seqs.iter().map(Vec::len).max().unwrap());
    }
    let reference: Vec<Vec<Vec<f32>>> = seqs.iter().map(|s| full_logits(&model, s)).collect();

    // Both prompts in one prefill call, logits at each prompt's last row.
    let mut rows = Vec::new();
    let mut last = Vec::new();
    for (slot, s) in seqs.iter().enumerate() {
        rows.extend((0..prompt[slot]).map(|pos| Row {
            slot,
            token: s[pos],
            pos,
        }));
        last.push(rows.len() - 1);
    }
    let out = forward(&views, &rows, &mut cache, &mut scratch, &last);
    let mut worst = 0f32;
    for slot in 0..2 {
        let d = max_diff(&out[slot], &reference[slot][prompt[slot] - 1]);
        worst = worst.max(d);
    }
    // Then one token per slot per step, each slot at its own position.
    let mut pos = prompt;
    loop {
        let live: Vec<usize> = (0..2).filter(|s| pos[*s] < seqs[*s].len()).collect();
        if live.is_empty() {
            break;
        }
        let rows: Vec<Row> = live
            .iter()
            .map(|&slot| Row {
                slot,
                token: seqs[slot][pos[slot]],
                pos: pos[slot],
            })
            .collect();
        let all: Vec<usize> = (0..rows.len()).collect();
        let out = forward(&views, &rows, &mut cache, &mut scratch, &all);
        for (r, &slot) in live.iter().enumerate() {
            let d = max_diff(&out[r], &reference[slot][pos[slot]]);
            worst = worst.max(d);
            pos[slot] += 1;
        }
    }
    // A prompt longer than one 64-row block of the product, alone in its call.
    let long: Vec<u32> = model
        .tokenizer
        .encode(
            &"The quick brown fox jumps over the lazy dog. ".repeat(8),
            false,
        )
        .unwrap();
    assert!(long.len() > 64);
    let mut cache: Vec<HostKv> = (0..c.num_hidden_layers)
        .map(|_| HostKv::zeros(1, c.num_key_value_heads, long.len(), c.head_dim))
        .collect();
    let rows: Vec<Row> = (0..long.len())
        .map(|pos| Row {
            slot: 0,
            token: long[pos],
            pos,
        })
        .collect();
    let out = forward(&views, &rows, &mut cache, &mut scratch, &[long.len() - 1]);
    let reference = full_logits(&model, &long);
    worst = worst.max(max_diff(&out[0], &reference[long.len() - 1]));

    // Logits are O(10); f32 rounding through 30 layers stays far below 1e-2.
    assert!(worst < 1e-2, "largest logit difference {worst}");
    eprintln!("largest logit difference kernel vs generic: {worst:e}");
}
