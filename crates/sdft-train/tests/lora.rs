//! LoRA on a tiny random model: merged and unmerged logits agree, PEFT export and
//! import round-trip, LoRA gradients match finite differences, and masked
//! positions contribute nothing. (burn-flex computes in f32 only, so the finite
//! differences use a step of 1/64 and a tolerance to match.)

use burn::backend::Autodiff;
use burn::prelude::*;
use sdft_core::rng::SplitMix64;
use sdft_model::fixture::{max_logit_diff, write_tiny_model};
use sdft_model::model::lora::{self, peft, LoraConfig};
use sdft_model::Model;
use sdft_train::step::{lora_grads, lora_params, set_lora_params, summed_nll};
use sdft_train::Sequence;

type F32 = sdft_model::backend::DefaultBackend;

fn load<B: Backend>(dir: &std::path::Path) -> Model<B> {
    Model::<B>::load(dir, &Default::default(), &Default::default()).unwrap()
}

/// The PEFT config of [`with_random_adapters`]' adapters.
fn adapter_config() -> peft::AdapterConfig {
    peft::AdapterConfig::new(&lora_config(), Some("tiny".into())).unwrap()
}

fn lora_config() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec!["all-linear".into()],
        use_rslora: false,
    }
}

/// Adapters on every projection with non-zero B, so every gradient is exercised.
fn with_random_adapters<B: Backend>(model: &mut Model<B>, seed: u64) {
    lora::attach(&mut model.llama, &lora_config(), seed, &model.device).unwrap();
    let mut rng = SplitMix64::new(seed + 1);
    let values: Vec<Vec<f32>> = lora_params(&model.llama)
        .into_iter()
        .map(|(_, _, v)| {
            v.iter()
                .map(|_| (rng.next_f64() as f32 - 0.5) * 0.4)
                .collect()
        })
        .collect();
    set_lora_params(&mut model.llama, &values, &model.device);
}

/// Greedy text of `engine` for a few fixed prompts (EOS does not stop).
fn greedy_texts(engine: &mut sdft_model::Engine<F32>) -> Vec<String> {
    use sdft_core::{GenerationRequest, Prompt, PromptPiece, SamplingParams};
    engine.stop_ids.clear();
    let reqs: Vec<GenerationRequest> = ["w5 w9 w12", "w44 w3", "w7 w7 w30 w31 w20"]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            GenerationRequest::new(
                format!("r{i}"),
                Prompt::new(vec![PromptPiece::Text(t.to_string())]),
            )
        })
        .collect();
    let params = SamplingParams::greedy().with_max_new_tokens(12);
    engine
        .generate_with(&reqs, &params, &mut |_, _| {})
        .unwrap()
        .into_iter()
        .map(|c| c.text)
        .collect()
}

#[test]
fn an_engine_follows_its_model_when_an_adapter_is_merged_into_it() {
    // The engine packs the weights for the CPU kernels on first use and keeps
    // them; merging an adapter replaces the weight tensors, and the next
    // generation must see the merged weights, exactly as a new engine does.
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 11).unwrap();
    let mut tuned = load::<F32>(dir.path());
    with_random_adapters(&mut tuned, 5);
    let adapter = dir.path().join("adapter");
    let cfg = adapter_config();
    peft::save(&tuned.llama, &cfg, &adapter).unwrap();

    let mut engine = sdft_model::Engine::new(load::<F32>(dir.path()), 2);
    let before = greedy_texts(&mut engine);
    assert_eq!(before, greedy_texts(&mut engine), "a rerun changes nothing");
    engine.model.load_adapter(&adapter, true).unwrap();
    let after = greedy_texts(&mut engine);
    let mut merged = load::<F32>(dir.path());
    merged.load_adapter(&adapter, true).unwrap();
    let fresh = greedy_texts(&mut sdft_model::Engine::new(merged, 2));
    assert_eq!(after, fresh);
    assert_ne!(before, after, "the adapter changes the greedy text");
}

#[test]
fn an_unmerged_all_linear_adapter_generates_what_the_merged_one_does() {
    // Decoding with unmerged adapters runs the generic path, whose step must apply
    // the adapter of every projection (o_proj and the MLP's included), as the
    // full forward and a merged model do.
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 11).unwrap();
    let mut tuned = load::<F32>(dir.path());
    with_random_adapters(&mut tuned, 5);
    let adapter = dir.path().join("adapter");
    peft::save(&tuned.llama, &adapter_config(), &adapter).unwrap();
    let mut merged = load::<F32>(dir.path());
    merged.load_adapter(&adapter, true).unwrap();
    let mut unmerged = load::<F32>(dir.path());
    unmerged.load_adapter(&adapter, false).unwrap();
    assert!(!lora::adapters(&unmerged.llama).is_empty());
    let merged = greedy_texts(&mut sdft_model::Engine::new(merged, 2));
    let unmerged = greedy_texts(&mut sdft_model::Engine::new(unmerged, 2));
    assert_eq!(unmerged, merged);
}

fn seqs() -> Vec<Sequence> {
    let a = Sequence {
        ids: vec![0, 5, 9, 12, 7, 30, 31, 1],
        target: vec![false, false, false, false, true, true, true, true],
    };
    let b = Sequence {
        ids: vec![0, 44, 3, 8, 1],
        target: vec![false, false, true, true, true],
    };
    vec![a, b]
}

#[test]
fn merged_and_unmerged_logits_agree_and_peft_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 7).unwrap();
    let mut m = load::<F32>(dir.path());
    let ids = vec![vec![0u32, 5, 9, 12, 7, 30], vec![0, 44, 3]];
    let base = m.logits_all(&ids).unwrap();
    with_random_adapters(&mut m, 3);
    let unmerged = m.logits_all(&ids).unwrap();
    assert!(
        max_logit_diff(&base, &unmerged) > 1e-2,
        "the adapter changes the logits"
    );

    let adapter = dir.path().join("adapter");
    let cfg = adapter_config();
    peft::save(&m.llama, &cfg, &adapter).unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["r"], 4);
    assert_eq!(json["target_modules"].as_array().unwrap().len(), 7);
    let bytes = std::fs::read(adapter.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let a = st
        .tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
        .unwrap();
    assert_eq!(a.shape(), &[4, 32]);
    let b = st
        .tensor("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight")
        .unwrap();
    assert_eq!(b.shape(), &[32, 4]);

    let mut back = load::<F32>(dir.path());
    back.load_adapter(&adapter, false).unwrap();
    assert!(max_logit_diff(&unmerged, &back.logits_all(&ids).unwrap()) < 1e-6);
    let mut merged = load::<F32>(dir.path());
    merged.load_adapter(&adapter, true).unwrap();
    assert!(lora::adapters(&merged.llama).is_empty());
    // Merging keeps the weights' layout, so generation with a merged adapter runs
    // the CPU decode kernel (and an unmerged one the generic path).
    if sdft_model::backend::backend_name() == "flex" {
        assert!(sdft_model::kernels::pack::cpu_decode_available(
            &merged.llama,
            &merged.config
        ));
        assert!(!sdft_model::kernels::pack::cpu_decode_available(
            &back.llama,
            &back.config
        ));
    }
    let d = max_logit_diff(&unmerged, &merged.logits_all(&ids).unwrap());
    assert!(d < 1e-4, "merged vs unmerged: {d}");

    // A bad adapter names the problem.
    std::fs::write(
        adapter.join("adapter_config.json"),
        json.to_string().replace("\"q_proj\"", "\"qq_proj\""),
    )
    .unwrap();
    let err = back.load_adapter(&adapter, false).unwrap_err().to_string();
    assert!(
        err.contains("qq_proj") && err.contains("adapter_config.json"),
        "{err}"
    );
}

#[test]
fn fresh_adapters_start_at_the_base_model() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 7).unwrap();
    let mut m = load::<F32>(dir.path());
    let ids = vec![vec![0u32, 5, 9, 12]];
    let base = m.logits_all(&ids).unwrap();
    lora::attach(&mut m.llama, &LoraConfig::default(), 1, &m.device.clone()).unwrap();
    assert_eq!(base, m.logits_all(&ids).unwrap(), "B starts at zero");
    let params = lora_params(&m.llama);
    assert_eq!(params.len(), 2 * 2 * 2, "q and v, A and B, 2 layers");
    // PEFT's kaiming-uniform bound for lora_A is 1/sqrt(d_in).
    let bound = 1.0 / (32f32).sqrt();
    assert!(
        params[0].2.iter().all(|x| x.abs() <= bound)
            && params[0].2.iter().any(|x| x.abs() > bound * 0.5)
    );
}

#[test]
fn lora_gradients_match_finite_differences() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 11).unwrap();
    let mut m = load::<Autodiff<F32>>(dir.path());
    m.llama = m.llama.no_grad();
    with_random_adapters(&mut m, 5);
    let data = seqs();
    let batch: Vec<&Sequence> = data.iter().collect();
    #[allow(clippy::clone_on_copy)] // Copy on flex, not on cuda
    let device = m.device.clone();
    let loss = summed_nll(&m.llama, &batch, &device);
    let grads = loss.backward();
    let analytic = lora_grads(&m.llama, &grads);
    let params: Vec<Vec<f32>> = lora_params(&m.llama).into_iter().map(|p| p.2).collect();
    let eval = |m: &mut Model<Autodiff<F32>>, p: &[Vec<f32>]| -> f64 {
        set_lora_params(&mut m.llama, p, &device);
        summed_nll(&m.llama, &batch, &device)
            .into_scalar()
            .elem::<f64>()
    };
    let mut rng = SplitMix64::new(99);
    let mut checked = 0;
    for _ in 0..24 {
        let i = rng.below(params.len());
        let j = rng.below(params[i].len());
        // Perturb by an f32-representable step so the parameters stay exact.
        let eps = 1.0f32 / 64.0;
        let mut plus = params.clone();
        plus[i][j] += eps;
        let mut minus = params.clone();
        minus[i][j] -= eps;
        let step = (plus[i][j] - minus[i][j]) as f64;
        let fd = (eval(&mut m, &plus) - eval(&mut m, &minus)) / step;
        let g = analytic[i][j] as f64;
        assert!(
            (fd - g).abs() <= 5e-3 + 2e-2 * g.abs(),
            "param {i}[{j}]: finite difference {fd}, autodiff {g}"
        );
        checked += 1;
    }
    assert_eq!(checked, 24);
    assert!(analytic.iter().flatten().any(|g| g.abs() > 1e-3));
}

#[test]
fn masked_positions_contribute_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 11).unwrap();
    let mut m = load::<Autodiff<F32>>(dir.path());
    m.llama = m.llama.no_grad();
    with_random_adapters(&mut m, 5);
    #[allow(clippy::clone_on_copy)] // Copy on flex, not on cuda
    let device = m.device.clone();
    let data = seqs();
    // The loss is exactly -sum of log p(target) at target positions.
    let lp = m.llama.token_logprobs(&[data[0].ids.clone()], &device);
    let manual: f64 = (1..data[0].ids.len())
        .filter(|t| data[0].target[*t])
        .map(|t| -(lp[0][t - 1] as f64))
        .sum();
    let loss = summed_nll(&m.llama, &[&data[0]], &device)
        .into_scalar()
        .elem::<f64>();
    assert!((loss - manual).abs() < 1e-4, "{loss} vs {manual}");
    // Changing masked tokens that come after the last target changes nothing, and
    // padding in a batch adds nothing: the batch equals the sum of its rows.
    let mut longer = data[1].clone();
    longer.ids.extend([9, 9, 9, 9, 9, 9]);
    longer.target.extend([false; 6]);
    let grads_of = |m: &Model<Autodiff<F32>>, s: &[&Sequence]| {
        let l = summed_nll(&m.llama, s, &device);
        let v = l.clone().into_scalar().elem::<f64>();
        (v, lora_grads(&m.llama, &l.backward()))
    };
    let (l1, g1) = grads_of(&m, &[&data[1]]);
    let (l2, g2) = grads_of(&m, &[&longer]);
    assert!((l1 - l2).abs() < 1e-5);
    let gd = g1
        .iter()
        .flatten()
        .zip(g2.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(gd < 1e-5, "{gd}");
    let (lb, _) = grads_of(&m, &[&data[0], &longer]);
    let (la, _) = grads_of(&m, &[&data[0]]);
    assert!((lb - (la + l1)).abs() < 1e-4, "{lb} vs {}", la + l1);
    // A sequence with no target has zero loss and zero gradient.
    let none = Sequence {
        ids: data[0].ids.clone(),
        target: vec![false; data[0].ids.len()],
    };
    let (l0, g0) = grads_of(&m, &[&none]);
    assert_eq!(l0, 0.0);
    assert!(g0.iter().flatten().all(|g| *g == 0.0));
}

#[test]
fn adapters_with_non_finite_or_unmatched_tensors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 11).unwrap();
    let cfg = adapter_config();
    // An all-NaN lora_A: an error naming the tensor, not silently other logits.
    let mut tuned = load::<F32>(dir.path());
    with_random_adapters(&mut tuned, 5);
    let mut values: Vec<Vec<f32>> = lora_params(&tuned.llama)
        .into_iter()
        .map(|(_, _, v)| v)
        .collect();
    let first = lora_params(&tuned.llama)[0].0.clone();
    values[0].iter_mut().for_each(|v| *v = f32::NAN);
    set_lora_params(&mut tuned.llama, &values, &tuned.device);
    let nan = dir.path().join("nan");
    peft::save(&tuned.llama, &cfg, &nan).unwrap();
    let e = load::<F32>(dir.path())
        .load_adapter(&nan, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("base_model.model.{first}.weight"))
            && e.contains("expected finite values, found NaN"),
        "{e}"
    );
    // A tensor that matches no target module: an error naming it.
    let good = dir.path().join("good");
    with_random_adapters(&mut tuned, 5);
    peft::save(&tuned.llama, &cfg, &good).unwrap();
    let file = good.join(peft::WEIGHTS_FILE);
    let bytes = std::fs::read(&file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let extra_name = "base_model.model.model.layers.99.self_attn.q_proj.lora_A.weight".to_string();
    let extra = [0u8; 16];
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().collect();
    views.push((
        extra_name.clone(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &extra).unwrap(),
    ));
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(&file, out).unwrap();
    let e = load::<F32>(dir.path())
        .load_adapter(&good, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&extra_name) && e.contains("match no target module"),
        "{e}"
    );
    // An infinity in the base weights: an error naming the tensor.
    let file = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let name = "model.layers.1.mlp.down_proj.weight";
    let view = st.tensor(name).unwrap();
    let mut data = view.data().to_vec();
    data[4..8].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != name)
        .collect();
    views.push((
        name.to_string(),
        safetensors::tensor::TensorView::new(view.dtype(), view.shape().to_vec(), &data).unwrap(),
    ));
    std::fs::write(&file, safetensors::serialize(views, None).unwrap()).unwrap();
    let e = Model::<F32>::load(dir.path(), &Default::default(), &Default::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains(name) && e.contains("expected finite values, found inf at flat index 1"),
        "{e}"
    );
}
