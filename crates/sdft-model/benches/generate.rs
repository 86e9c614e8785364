//! `cargo xtask bench generate` (or `cargo bench -p sdft-model --bench generate`):
//! generation speed on SmolLM2-135M-Instruct (or `--model NAME|PATH`, e.g.
//! `qwen2.5-coder-0.5b-instruct`), f32 weights, on this build's backend.
//!
//! Measures prefill tokens/s for a 128-token prompt, decode tokens/s at batch 1,
//! and generated tokens/s at batch 16 (64-token prompts, 64 new tokens each), and
//! prints them beside llama.cpp's numbers for the same model (F32 GGUF, 2 threads):
//! measured in the same run when `--compare-llama-cpp DIR` names a llama.cpp build
//! (its `llama-bench` and `llama-batched-bench`), else the reference values recorded
//! in docs/performance.md (SmolLM2 only). `--reps N` (default 3) takes each measure N times and
//! keeps the best.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use sdft_core::{GenerationRequest, Prompt, PromptPiece, SamplingParams};
use sdft_model::backend::{backend_name, default_device, DefaultBackend};
use sdft_model::{assets, Engine, LoadOptions, Model};

/// A prompt of exactly `n` tokens (id 1 is `<|im_start|>`, then ordinary words).
fn prompt_ids(engine: &Engine<DefaultBackend>, n: usize, salt: usize) -> Prompt {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "looked", "at", "birds", "in", "trees",
    ];
    let mut text = String::new();
    let mut i = salt;
    while engine.model.tokenizer.encode(&text, true).unwrap().len() < n {
        text.push(' ');
        text.push_str(words[i % words.len()]);
        i += 7;
    }
    let mut ids = engine.model.tokenizer.encode(&text, true).unwrap();
    ids.truncate(n);
    let text = engine.model.tokenizer.decode(&ids, false).unwrap();
    Prompt::new(vec![PromptPiece::Text(text)])
}

fn run(engine: &Engine<DefaultBackend>, prompts: Vec<Prompt>, new_tokens: usize) -> (f64, usize) {
    let reqs: Vec<GenerationRequest> = prompts
        .into_iter()
        .enumerate()
        .map(|(i, p)| GenerationRequest::new(format!("r{i}"), p))
        .collect();
    let params = SamplingParams::greedy().with_max_new_tokens(new_tokens);
    let t = Instant::now();
    let out = engine
        .generate_with(&reqs, &params, &mut |_, _| {})
        .unwrap();
    (
        t.elapsed().as_secs_f64(),
        out.iter().map(|c| c.tokens).sum(),
    )
}

fn llama_cpp(dir: &std::path::Path, gguf: &std::path::Path) {
    let bench = dir.join("llama-bench");
    let batched = dir.join("llama-batched-bench");
    println!("\nllama.cpp, same run ({}):", dir.display());
    for (bin, args) in [
        (&bench, vec!["-t", "2", "-p", "128", "-n", "128"]),
        (
            &batched,
            vec!["-t", "2", "-npp", "64", "-ntg", "64", "-npl", "1,4,16"],
        ),
    ] {
        match Command::new(bin).arg("-m").arg(gguf).args(&args).output() {
            Ok(o) => print!("{}", String::from_utf8_lossy(&o.stdout)),
            Err(e) => println!("could not run {}: {e}", bin.display()),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let compare = args
        .iter()
        .position(|a| a == "--compare-llama-cpp")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let gguf_f32 = args
        .iter()
        .position(|a| a == "--llama-cpp-model")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let model_name = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1))
        .map_or("smollm2-135m-instruct", String::as_str);
    // llama.cpp's recorded numbers are SmolLM2's.
    let recorded = model_name == "smollm2-135m-instruct";
    let path = assets::resolve_model(model_name).expect("model");
    let device = default_device();
    let model =
        Model::<DefaultBackend>::load(&path, &LoadOptions::default(), &device).expect("load");
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "sdft-model generate benchmark: {model_name}, f32 weights, backend {}, {threads} cores",
        backend_name()
    );
    let mut engine = Engine::new(model, 1);
    engine.stop_ids.clear(); // exact token counts
                             // Warm-up.
    let warm = prompt_ids(&engine, 16, 0);
    run(&engine, vec![warm], 4);

    // Every measure is taken `reps` times and the best kept: on a shared machine
    // noise only ever slows a run down.
    let reps: usize = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let best = |f: &mut dyn FnMut() -> f64| (0..reps.max(1)).map(|_| f()).fold(0.0, f64::max);
    // `--only prefill|decode1|decode16` takes one measure (for profiling); the
    // others print as 0.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let best = |name: &str, f: &mut dyn FnMut() -> f64| if wanted(name) { best(f) } else { 0.0 };

    let p128 = prompt_ids(&engine, 128, 1);
    let prefill = best("prefill", &mut || {
        128.0 / run(&engine, vec![p128.clone()], 1).0
    });

    let p16 = prompt_ids(&engine, 16, 2);
    let decode1 = best("decode1", &mut || {
        let (t_short, _) = run(&engine, vec![p16.clone()], 1);
        let (t_long, n) = run(&engine, vec![p16.clone()], 65);
        (n - 1) as f64 / (t_long - t_short)
    });

    engine.batch_size = 16;
    let prompts: Vec<Prompt> = (0..16).map(|i| prompt_ids(&engine, 64, 3 + i)).collect();
    // Prefill of all 16 prompts plus each one's first token, then the whole run:
    // the difference is the decode phase, which is what llama-batched-bench's
    // S_TG (the reference's "generated tokens/s") times.
    let mut batch16 = 0f64;
    let decode16 = best("decode16", &mut || {
        let (t16_first, n16_first) = run(&engine, prompts.clone(), 1);
        let (t16, n16) = run(&engine, prompts.clone(), 64);
        batch16 = batch16.max(n16 as f64 / t16);
        (n16 - n16_first) as f64 / (t16 - t16_first)
    });

    println!("| measure | sdft-rs | llama.cpp (docs/performance.md) | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, ours, theirs) in [
        ("prefill, 128-token prompt (tokens/s)", prefill, 343.0),
        ("decode, batch 1 (tokens/s)", decode1, 35.0),
        (
            "decode, batch 16, 64+64, as S_TG (tokens/s)",
            decode16,
            173.0,
        ),
        (
            "end to end, batch 16, 64+64, prefill included (tokens/s)",
            batch16,
            173.0,
        ),
    ] {
        if recorded {
            println!(
                "| {name} | {ours:.1} | {theirs:.1} | {:.2}x |",
                ours / theirs
            );
        } else {
            println!("| {name} | {ours:.1} | - | - |");
        }
    }
    if let Some(dir) = compare {
        let gguf = gguf_f32.unwrap_or(path);
        llama_cpp(&dir, &gguf);
    }
}
