//! The CPU-side parts of `cargo xtask gpu-check` on flex: its options, the random
//! Llama-2-7B shape (parameter count against the published 6,738,415,616), and a
//! whole measuring run on the small shape with its report (the HF column from a
//! stand-in for the Python script, to check how its results are read and shown).

use std::path::Path;

use burn::tensor::DType;
use sdft_tests::gpu_check::{parse_args, run, Shape, LLAMA_7B, SMALL};

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn options_defaults_and_errors() {
    let a = parse_args(&[]).unwrap().unwrap();
    assert_eq!(
        (
            a.shape,
            a.dtype,
            a.prompt,
            a.new_tokens,
            a.batches.clone(),
            a.lora_seq
        ),
        (LLAMA_7B, DType::BF16, 512, 64, vec![1, 32], 512)
    );
    assert!(a.compare_hf.is_none() && !a.skip_parity);
    let a = parse_args(&args(
        "--shape small --dtype f32 --prompt 16 --batch 1,4 --compare-hf /usr/bin/python3 --skip-parity",
    ))
    .unwrap()
    .unwrap();
    assert_eq!((a.shape, a.dtype, a.prompt), (SMALL, DType::F32, 16));
    assert_eq!(a.batches, vec![1, 4]);
    assert_eq!(a.compare_hf.as_deref(), Some(Path::new("/usr/bin/python3")));
    assert!(a.skip_parity);
    assert!(parse_args(&args("--help")).unwrap().is_none());
    for (bad, says) in [
        ("--shape 13b", "expects 7b or small"),
        ("--dtype f64", "expects bf16, f16, f32 or q4_k"),
        ("--batch 1,0", "positive whole number"),
        ("--prompt", "needs a value"),
        ("--new-tokens 1", "at least 2"),
        ("--frobnicate", "unknown option `--frobnicate`"),
        (
            "--shape small --prompt 5000",
            "exceed the small shape's 1024",
        ),
    ] {
        let e = parse_args(&args(bad)).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn the_7b_shape_is_llama_2_7b() {
    assert_eq!(LLAMA_7B.parameters(), 6_738_415_616);
    let c = LLAMA_7B.config();
    assert_eq!(
        (c.head_dim, c.num_key_value_heads, c.vocab_size),
        (128, 32, 32000)
    );
    assert!(!c.tie_word_embeddings);
}

#[test]
fn small_run_writes_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    // Stands in for `python hf_generate.py ... --out FILE ...`: writes FILE.
    let fake = tmp.path().join("fake-python");
    std::fs::write(
        &fake,
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = --out ]; then out=$2; fi; shift; done\n\
         echo '{\"prefill_tokens_per_s\": 1234.5, \"decode_tokens_per_s\": {\"1\": 11.5, \"3\": 30.3}}' > \"$out\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .unwrap();
    let out = tmp.path().join("report");
    let a = parse_args(&args(&format!(
        "--shape small --dtype f32 --prompt 16 --new-tokens 24 --batch 1,3 --lora-seq 16 --reps 2 --compare-hf {} --out {}",
        fake.display(),
        out.display()
    )))
    .unwrap()
    .unwrap();
    let device = Default::default();
    let r = run::<burn::backend::Flex<f32, i32>>(&a, "flex", &device).unwrap();
    let s = &r["sdft"];
    let positive = |v: &serde_json::Value| v.as_f64().is_some_and(|x| x.is_finite() && x > 0.0);
    assert!(positive(&s["prefill_tokens_per_s"]), "{r}");
    assert!(
        positive(&s["decode_tokens_per_s"]["1"]) && positive(&s["decode_tokens_per_s"]["3"]),
        "{r}"
    );
    assert!(
        positive(&s["lora_step"]["secs"]) && positive(&s["lora_step"]["peak_gib"]),
        "{r}"
    );
    assert_eq!(r["parameters"].as_u64(), Some(SMALL.parameters()));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(written["sdft"]["lora_step"]["tokens"], 16);
    assert_eq!(written["hf"], r["hf"]);
    let (w, g) = (
        &written["sdft"]["prefill_tokens_per_s"],
        &s["prefill_tokens_per_s"],
    );
    assert!((w.as_f64().unwrap() / g.as_f64().unwrap() - 1.0).abs() < 1e-9);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| prefill, 16 tokens (tokens/s) |"), "{md}");
    assert!(
        md.contains("| decode, batch 3, 24 new tokens (generated tokens/s) |"),
        "{md}"
    );
    assert!(md.contains("| 1234.5 |") && md.contains("| 30.3 |"), "{md}");
    let hf_config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("hf_config.json")).unwrap())
            .unwrap();
    assert_eq!(hf_config["hidden_size"], 64);
    assert_eq!(hf_config["torch_dtype"], "float32");
}

/// `--dtype q4_k` on flex: the random matrices quantized to Q4_K and the model
/// loaded quantized-only (a 256-wide shape: Q4_K blocks are 256 values), its
/// prefill and decode measured, the LoRA step left out.
#[test]
fn q4_k_run_computes_on_quantized_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = parse_args(&args(&format!(
        "--dtype q4_k --prompt 16 --new-tokens 8 --batch 1,2 --reps 1 --out {}",
        tmp.path().display()
    )))
    .unwrap()
    .unwrap();
    assert!(a.q4_k);
    a.shape = Shape {
        name: "small-256",
        hidden: 256,
        intermediate: 512,
        vocab: 512,
        ..SMALL
    };
    let device = Default::default();
    let r = run::<burn::backend::Flex<f32, i32>>(&a, "flex", &device).unwrap();
    let s = &r["sdft"];
    assert_eq!(r["dtype"], "q4_k");
    assert!(s["prefill_tokens_per_s"].as_f64().unwrap() > 0.0, "{r}");
    assert!(s["lora_step"].is_null(), "{r}");
    assert!(s["generation_peak"]["gib"].as_f64().unwrap() > 0.0, "{r}");
    let md = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    assert!(md.contains("not run (quantized base)"), "{md}");
    // The model really is quantized-only.
    let m = sdft_tests::gpu_check::random_model::<burn::backend::Flex<f32, i32>>(
        &a.shape, a.dtype, true, &device,
    );
    assert!(m.llama.quantized_only);
    let kinds = sdft_model::Engine::new(m, 1)
        .kernel_weights()
        .unwrap()
        .kinds();
    assert_eq!(kinds, "Q4_K: 9", "{kinds}");
}
