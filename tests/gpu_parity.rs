//! The GPU backend of this build (`--features wgpu`: lavapipe or any Vulkan device;
//! `--features cuda`: an NVIDIA GPU) against the `flex` CPU path, on a tiny random
//! Llama and on SmolLM2-135M-Instruct (cached asset): logits of a padded batch
//! (f32, within 1e-3), greedy generation through the `Engine` (the generic
//! KV-cached path on the GPU, the CPU kernels on flex: the same text), one LoRA
//! training step (loss, gradients and the AdamW-updated adapter within 1e-4), and
//! bf16 / f16 checkpoints (loaded in their own dtype where the device computes in
//! it, else as f32) giving logits near the f32 model's. `cargo xtask test` runs it
//! with `--features wgpu`, `cargo xtask gpu-check` with `--features cuda`; without
//! either feature this file is empty, and without a device each test says so once.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::DType;
use sdft_core::{GenerationRequest, SamplingParams};
use sdft_model::fixture::write_tiny_model;
use sdft_model::model::lora::{self, LoraConfig};
use sdft_model::{Engine, LoadOptions, Model};
use sdft_tests::gpu::{gpu_device, Gpu, GPU_NAME};
use sdft_train::optim::{AdamState, AdamW};
use sdft_train::step::{lora_grads, lora_params, set_lora_params, summed_nll};
use sdft_train::Sequence;

type Cpu = burn::backend::Flex<f32, i32>;

/// Largest absolute logit difference accepted between the GPU and flex (f32).
const LOGIT_TOLERANCE: f32 = 1e-3;
/// Largest absolute difference of a LoRA step's loss, gradients and updated adapter.
const STEP_TOLERANCE: f32 = 1e-4;

/// The cached SmolLM2 GGUF (`cached_model` records the skip when it is absent).
fn smollm2() -> Option<PathBuf> {
    sdft_model::assets::cached_model(&sdft_model::assets::SMOLLM2_135M_INSTRUCT)
}

fn tiny(dir: &Path) -> PathBuf {
    let p = dir.join("tiny");
    write_tiny_model(&p, 7).unwrap();
    p
}

/// The largest absolute difference of two models' logits; a NaN on either side
/// counts as infinitely far (a plain `max` would skip it).
fn max_logit_diff(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> f32 {
    assert_eq!(a.len(), b.len(), "sequence counts");
    a.iter()
        .flatten()
        .flatten()
        .zip(b.iter().flatten().flatten())
        .map(|(x, y)| distance(*x, *y))
        .fold(0f32, f32::max)
}

/// `|x - y|`, infinite when either is NaN.
fn distance(x: f32, y: f32) -> f32 {
    let d = (x - y).abs();
    if d.is_nan() {
        f32::INFINITY
    } else {
        d
    }
}

fn load<B: Backend>(path: &Path, dtype: DType, device: &B::Device) -> Model<B> {
    let options = LoadOptions {
        dtype,
        ..LoadOptions::default()
    };
    Model::load(path, &options, device).unwrap()
}

/// Token sequences of different lengths (a padded batch) within `vocab`.
fn sequences(vocab: usize, lens: &[usize]) -> Vec<Vec<u32>> {
    let mut rng = sdft_core::rng::SplitMix64::new(11);
    lens.iter()
        .map(|n| (0..*n).map(|_| 2 + rng.below(vocab - 2) as u32).collect())
        .collect()
}

fn logits_parity(name: &str, path: &Path, lens: &[usize]) {
    let device = gpu_device().unwrap();
    let cpu = load::<Cpu>(path, DType::F32, &Default::default());
    let gpu = load::<Gpu>(path, DType::F32, &device);
    let seqs = sequences(cpu.config.vocab_size, lens);
    let want = cpu.logits_all(&seqs).unwrap();
    let got = gpu.logits_all(&seqs).unwrap();
    let diff = max_logit_diff(&got, &want);
    eprintln!(
        "parity: {name}: logits {GPU_NAME} vs flex, {} sequences ({} tokens), max |diff| {diff:.2e} (tolerance {LOGIT_TOLERANCE:.0e})",
        seqs.len(),
        lens.iter().sum::<usize>()
    );
    assert!(
        diff <= LOGIT_TOLERANCE,
        "{name}: max logit difference {diff}"
    );
}

#[test]
fn tiny_logits_match_flex() {
    if gpu_device().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    logits_parity("tiny", &tiny(tmp.path()), &[9, 3, 16]);
}

#[test]
fn smollm2_logits_match_flex() {
    let (Some(_), Some(path)) = (gpu_device(), smollm2()) else {
        return;
    };
    logits_parity("smollm2-135m", &path, &[12, 5]);
}

fn greedy_parity(name: &str, path: &Path, prompts: &[&str], max_new_tokens: usize) {
    let device = gpu_device().unwrap();
    let requests: Vec<GenerationRequest> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| GenerationRequest::text(format!("r{i}"), *p))
        .collect();
    let params = SamplingParams::greedy().with_max_new_tokens(max_new_tokens);
    let cpu = Engine::new(load::<Cpu>(path, DType::F32, &Default::default()), 2);
    let gpu = Engine::new(load::<Gpu>(path, DType::F32, &device), 2);
    let want = cpu
        .generate_with(&requests, &params, &mut |_, _| {})
        .unwrap();
    let got = gpu
        .generate_with(&requests, &params, &mut |_, _| {})
        .unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.text, w.text,
            "{name}: prompt {i}: {GPU_NAME} vs the CPU kernels"
        );
        assert_eq!(
            (g.tokens, g.finish_reason),
            (w.tokens, w.finish_reason),
            "{name}: prompt {i}"
        );
    }
    let tokens: usize = got.iter().map(|c| c.tokens).sum();
    eprintln!(
        "parity: {name}: greedy generation through the Engine, {} prompts, {tokens} tokens: {GPU_NAME} text equals the CPU kernels'",
        prompts.len()
    );
}

#[test]
fn tiny_greedy_generation_matches_cpu_kernels() {
    if gpu_device().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Three prompts on two slots: the third takes a freed slot mid-run.
    greedy_parity(
        "tiny",
        &tiny(tmp.path()),
        &["w5 w9 w12 w40", "w33", "w7 w7 w8 w60 w61 w3"],
        12,
    );
}

#[test]
fn smollm2_greedy_generation_matches_cpu_kernels() {
    let (Some(_), Some(path)) = (gpu_device(), smollm2()) else {
        return;
    };
    greedy_parity(
        "smollm2-135m",
        &path,
        &[
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
            "The three primary colours are",
        ],
        10,
    );
}

/// One LoRA step as the trainer takes it: base frozen, fresh adapters (q, v; one
/// AdamW step first so that `B` is not zero and every gradient is live), the
/// mean NLL of the target tokens, its gradients, and an AdamW update on the host.
fn lora_step<B: AutodiffBackend>(path: &Path, seqs: &[Sequence], device: &B::Device) -> Step {
    let mut model = load::<B>(path, DType::F32, device);
    model.llama = model.llama.no_grad();
    let config = LoraConfig {
        dropout: 0.0,
        ..LoraConfig::default()
    };
    lora::attach(&mut model.llama, &config, 3, device).unwrap();
    // B = 0 after init: give it values so that A's gradient is not zero either.
    let mut params: Vec<Vec<f32>> = lora_params(&model.llama)
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, v))| {
            if i % 2 == 1 {
                v.iter()
                    .enumerate()
                    .map(|(j, _)| ((j % 7) as f32 - 3.0) * 0.01)
                    .collect()
            } else {
                v
            }
        })
        .collect();
    set_lora_params(&mut model.llama, &params, device);
    let refs: Vec<&Sequence> = seqs.iter().collect();
    let n: usize = seqs.iter().map(Sequence::n_targets).sum();
    let loss = summed_nll(&model.llama, &refs, device) / n as f64;
    let loss_value: f32 = loss.clone().into_scalar().elem();
    let grads = loss.backward();
    let grads = lora_grads(&model.llama, &grads);
    let sizes: Vec<usize> = params.iter().map(Vec::len).collect();
    let mut state = AdamState::zeros(&sizes);
    adamw().step(&mut state, &mut params, &grads, LR);
    Step {
        loss: loss_value,
        grads,
        params,
    }
}

/// The trainer's default AdamW and learning rate (`TrainConfig::default()`).
fn adamw() -> AdamW {
    let c = sdft_train::TrainConfig::default();
    AdamW {
        beta1: c.adam_beta1,
        beta2: c.adam_beta2,
        eps: c.adam_eps,
        weight_decay: c.weight_decay,
    }
}

const LR: f64 = 1e-4;

struct Step {
    loss: f32,
    grads: Vec<Vec<f32>>,
    params: Vec<Vec<f32>>,
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| distance(*x, *y))
        .fold(0f32, f32::max)
}

fn lora_parity(name: &str, path: &Path, lens: &[usize]) {
    let device = gpu_device().unwrap();
    let vocab = load::<Cpu>(path, DType::F32, &Default::default())
        .config
        .vocab_size;
    // The second half of each sequence is the target (a prompt, then a response).
    let seqs: Vec<Sequence> = sequences(vocab, lens)
        .into_iter()
        .map(|ids| {
            let target = (0..ids.len()).map(|t| t >= ids.len() / 2).collect();
            Sequence { ids, target }
        })
        .collect();
    let want = lora_step::<Autodiff<Cpu>>(path, &seqs, &Default::default());
    let got = lora_step::<Autodiff<Gpu>>(path, &seqs, &device);
    let dl = (got.loss - want.loss).abs();
    let dg = max_diff(&got.grads, &want.grads);
    assert_eq!(LR, sdft_train::TrainConfig::default().learning_rate);
    // Adam's first step moves each parameter by about lr * sign(gradient), so
    // where a gradient is within the gradient tolerance of zero its sign, and the
    // update, is not determined by f32 arithmetic: such entries may differ by up
    // to 2 lr; every other entry must agree within the tolerance.
    let (mut dp, mut undetermined, mut undetermined_max) = (0f32, 0usize, 0f32);
    for ((g, w), wg) in got
        .params
        .iter()
        .flatten()
        .zip(want.params.iter().flatten())
        .zip(want.grads.iter().flatten())
    {
        let d = distance(*g, *w);
        if wg.abs() <= STEP_TOLERANCE {
            undetermined += 1;
            undetermined_max = undetermined_max.max(d);
        } else {
            dp = dp.max(d);
        }
    }
    eprintln!(
        "parity: {name}: one LoRA step (r8 q,v, AdamW lr {LR:.0e}), {GPU_NAME} vs flex: loss {:.6} vs {:.6} (|diff| {dl:.2e}), gradients max |diff| {dg:.2e}, updated adapter max |diff| {dp:.2e} (tolerance {STEP_TOLERANCE:.0e}; {undetermined} entries with |gradient| <= {STEP_TOLERANCE:.0e}: max |diff| {undetermined_max:.2e}, bound 2 lr)",
        got.loss, want.loss
    );
    assert!(
        undetermined_max <= 2.0 * LR as f32 * 1.01,
        "{name}: near-zero-gradient entries differ by {undetermined_max}"
    );
    assert!(
        dl <= STEP_TOLERANCE,
        "{name}: loss {} vs {}",
        got.loss,
        want.loss
    );
    assert!(dg <= STEP_TOLERANCE, "{name}: gradient difference {dg}");
    assert!(dp <= STEP_TOLERANCE, "{name}: adapter difference {dp}");
}

#[test]
fn tiny_lora_step_matches_flex() {
    if gpu_device().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    lora_parity("tiny", &tiny(tmp.path()), &[10, 6]);
}

#[test]
fn smollm2_lora_step_matches_flex() {
    let (Some(_), Some(path)) = (gpu_device(), smollm2()) else {
        return;
    };
    lora_parity("smollm2-135m", &path, &[12, 8]);
}

/// bf16 and f16 checkpoints (the tiny model written out in each) load on the GPU,
/// in their own dtype where the device computes in it, and their logits stay near
/// the f32 model's: within a fraction of the logits' range that the format's
/// precision allows (bf16 keeps 8 significant bits, f16 11).
#[test]
fn half_precision_weights_give_logits_near_f32() {
    let Some(device) = gpu_device() else {
        return;
    };
    use sdft_model::convert::{write_hf_dir, SaveDtype};
    let tmp = tempfile::tempdir().unwrap();
    let path = tiny(tmp.path());
    let seqs = sequences(sdft_model::fixture::VOCAB, &[9, 4]);
    let f32_logits = load::<Gpu>(&path, DType::F32, &device)
        .logits_all(&seqs)
        .unwrap();
    let range = f32_logits
        .iter()
        .flatten()
        .flatten()
        .fold(0f32, |m, x| m.max(x.abs()));
    for (save, dtype, rel) in [
        (SaveDtype::BF16, DType::BF16, 0.05f32),
        (SaveDtype::F16, DType::F16, 0.01),
    ] {
        let out = tmp.path().join(format!("{dtype:?}"));
        let files = sdft_model::ModelFiles::open(&path).unwrap();
        write_hf_dir(&files, &out, save).unwrap();
        drop(files);
        let compute = if Gpu::supports_dtype(&device, dtype) {
            dtype
        } else {
            eprintln!("note: this {GPU_NAME} device does not compute in {dtype:?}; the {dtype:?} checkpoint is loaded as f32");
            DType::F32
        };
        let logits = load::<Gpu>(&out, compute, &device)
            .logits_all(&seqs)
            .unwrap();
        let diff = max_logit_diff(&logits, &f32_logits);
        eprintln!(
            "parity: tiny: {dtype:?} checkpoint on {GPU_NAME}, computed in {compute:?}: max |logit diff| to f32 {diff:.2e} (logits up to {range:.2}, tolerance {:.2e})",
            rel * range
        );
        assert!(
            diff <= rel * range,
            "{dtype:?}: logit difference {diff} (range {range})"
        );
    }
}
