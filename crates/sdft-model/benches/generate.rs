//! `cargo xtask bench generate` (or `cargo bench -p sdft-model --bench generate`):
//! generation speed on SmolLM2-135M-Instruct (or `--model NAME|PATH`, e.g.
//! `qwen2.5-coder-0.5b-instruct`), on this build's backend: with the matrices
//! the GGUF file stores quantized kept that way and computed on with integer
//! products (the default, `--dtype quantized`), or all in `f32` (`--dtype f32`,
//! the reference path). It reports the weights' bytes as the kernels hold them
//! and the process's peak resident memory.
//!
//! Measures prefill tokens/s for a 128-token prompt, decode tokens/s at batch 1,
//! generated tokens/s at batch 16 (64-token prompts, 64 new tokens each), and the
//! stages' case: batch 16, 256 new tokens, with and without stop strings (a chat
//! template's end-of-turn and a text stop, as every distill and eval stage sets
//! them), whose ratio must stay near 1.
//!
//! With `--compare-llama-cpp DIR` (a llama.cpp build with `llama-bench` and
//! `llama-batched-bench`), llama.cpp runs in the same invocation on the same number
//! of threads, its own figures are parsed from its JSON output, and the ratios are
//! computed from those. Without it, the figures recorded for SmolLM2 in
//! docs/performance.md are printed as such, with their date, and no ratio.
//! `--reps N` (default 3) takes each measure N times and keeps the best.

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
    run_with(
        engine,
        prompts,
        SamplingParams::greedy().with_max_new_tokens(new_tokens),
    )
}

fn run_with(
    engine: &Engine<DefaultBackend>,
    prompts: Vec<Prompt>,
    params: SamplingParams,
) -> (f64, usize) {
    let reqs: Vec<GenerationRequest> = prompts
        .into_iter()
        .enumerate()
        .map(|(i, p)| GenerationRequest::new(format!("r{i}"), p))
        .collect();
    let t = Instant::now();
    let out = engine
        .generate_with(&reqs, &params, &mut |_, _| {})
        .unwrap();
    (
        t.elapsed().as_secs_f64(),
        out.iter().map(|c| c.tokens).sum(),
    )
}

/// llama.cpp's own figures, parsed from its JSON output.
#[derive(Debug, Default)]
struct LlamaCpp {
    prefill: Option<f64>,
    decode1: Option<f64>,
    decode16: Option<f64>,
}

/// Runs `llama-bench -o json` and `llama-batched-bench --output-format jsonl` on
/// `gguf` with `threads` threads and reads their tokens/s.
fn llama_cpp(dir: &std::path::Path, gguf: &std::path::Path, threads: usize) -> LlamaCpp {
    let t = threads.to_string();
    let mut out = LlamaCpp::default();
    println!(
        "\nllama.cpp, same run ({}, {} threads, {}):",
        dir.display(),
        threads,
        gguf.display()
    );
    let bench = Command::new(dir.join("llama-bench"))
        .arg("-m")
        .arg(gguf)
        .args(["-t", &t, "-p", "128", "-n", "128", "-o", "json"])
        .output();
    match bench {
        Ok(o) => match serde_json::from_slice::<serde_json::Value>(&o.stdout) {
            Ok(serde_json::Value::Array(rows)) => {
                for r in rows {
                    let (p, n) = (r["n_prompt"].as_u64(), r["n_gen"].as_u64());
                    let ts = r["avg_ts"].as_f64();
                    match (p, n) {
                        (Some(128), Some(0)) => out.prefill = ts,
                        (Some(0), Some(128)) => out.decode1 = ts,
                        _ => {}
                    }
                }
            }
            _ => println!(
                "llama-bench gave no JSON: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        },
        Err(e) => println!("could not run llama-bench: {e}"),
    }
    let batched = Command::new(dir.join("llama-batched-bench"))
        .arg("-m")
        .arg(gguf)
        .args([
            "-t", &t, "-tb", &t, "-npp", "64", "-ntg", "64", "-npl", "1,16", "-c", "2048",
        ])
        .args(["--output-format", "jsonl"])
        .output();
    match batched {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) {
                    if v["pl"].as_u64() == Some(16) {
                        out.decode16 = v["speed_tg"].as_f64();
                    }
                }
            }
            if out.decode16.is_none() {
                println!("llama-batched-bench gave no JSON line for 16 sequences");
            }
        }
        Err(e) => println!("could not run llama-batched-bench: {e}"),
    }
    out
}

/// The process's peak resident memory (`VmHWM`), in MiB; 0 where
/// `/proc/self/status` is not there.
fn peak_rss_mib() -> f64 {
    status_mib("VmHWM")
}

/// A field of `/proc/self/status` in kB (`VmRSS`, `RssAnon`, `RssFile`), in
/// MiB; 0 where it is not there.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
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
    let dtype = args
        .iter()
        .position(|a| a == "--dtype")
        .and_then(|i| args.get(i + 1))
        .map_or("quantized", String::as_str);
    let quantized = match dtype {
        "quantized" => true,
        "f32" => false,
        other => panic!("--dtype {other}: expected quantized or f32"),
    };
    let device = default_device();
    let options = LoadOptions {
        quantized,
        ..LoadOptions::default()
    };
    let t = std::time::Instant::now();
    let model = Model::<DefaultBackend>::load(&path, &options, &device).expect("load");
    let load_secs = t.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "sdft-model generate benchmark: {model_name}, --dtype {dtype}, backend {}, {threads} cores",
        backend_name()
    );
    println!(
        "loaded in {load_secs:.1} s; peak resident memory {:.1} MiB, now {:.1} MiB ({:.1} anonymous, {:.1} file-backed)",
        peak_rss_mib(),
        status_mib("VmRSS"),
        status_mib("RssAnon"),
        status_mib("RssFile"),
    );
    let mut engine = Engine::new(model, 1);
    engine.stop_ids.clear(); // exact token counts
                             // Warm-up.
    let warm = prompt_ids(&engine, 16, 0);
    run(&engine, vec![warm], 4);
    if let Some(host) = engine.kernel_weights() {
        println!(
            "weights as the kernels hold them: {:.1} MiB ({}); peak resident memory so far {:.1} MiB, \
             now {:.1} MiB ({:.1} anonymous, {:.1} file-backed)",
            host.packed_bytes() as f64 / (1 << 20) as f64,
            host.kinds(),
            peak_rss_mib(),
            status_mib("VmRSS"),
            status_mib("RssAnon"),
            status_mib("RssFile"),
        );
    }

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

    // The stages' case: 256 new tokens at batch 16, without and with the stop
    // strings a chat-format stage sets (its end-of-turn token and a text stop that
    // does not occur), end to end.
    let stops = SamplingParams::greedy()
        .with_max_new_tokens(256)
        .with_stop("<|im_end|>")
        .with_stop("\n### Instruction:");
    let mut stages = (0.0f64, 0.0f64);
    if wanted("stops") {
        for _ in 0..reps.max(1) {
            let (t, n) = run(&engine, prompts.clone(), 256);
            stages.0 = stages.0.max(n as f64 / t);
            let (t, n) = run_with(&engine, prompts.clone(), stops.clone());
            stages.1 = stages.1.max(n as f64 / t);
        }
    }
    println!("| measure | sdft-rs |");
    println!("| --- | ---: |");
    let ours = [
        ("prefill, 128-token prompt (tokens/s)", prefill),
        ("decode, batch 1 (tokens/s)", decode1),
        ("decode, batch 16, 64+64, as S_TG (tokens/s)", decode16),
        (
            "end to end, batch 16, 64+64, prefill included (tokens/s)",
            batch16,
        ),
        (
            "end to end, batch 16, 64+256, no stop strings (tokens/s)",
            stages.0,
        ),
        (
            "end to end, batch 16, 64+256, stop strings (tokens/s)",
            stages.1,
        ),
    ];
    for (name, v) in ours {
        println!("| {name} | {v:.1} |");
    }
    println!("peak resident memory: {:.1} MiB", peak_rss_mib());
    if stages.0 > 0.0 {
        println!(
            "stop strings cost: {:.2}x the rate without them (target >= 0.90)",
            stages.1 / stages.0
        );
    }
    if let Some(dir) = compare {
        let gguf = gguf_f32.unwrap_or(path);
        let l = llama_cpp(&dir, &gguf, threads);
        println!("\n| measure | sdft-rs | llama.cpp (same run) | ratio |");
        println!("| --- | ---: | ---: | ---: |");
        for (name, ours, theirs) in [
            (ours[0].0, prefill, l.prefill),
            (ours[1].0, decode1, l.decode1),
            (ours[2].0, decode16, l.decode16),
        ] {
            match theirs {
                Some(t) => println!("| {name} | {ours:.1} | {t:.1} | {:.2}x |", ours / t),
                None => println!("| {name} | {ours:.1} | (not measured) | - |"),
            }
        }
    } else if recorded {
        println!(
            "\nllama.cpp was not run (--compare-llama-cpp DIR); its figures recorded in \
             docs/performance.md for SmolLM2 (F32 GGUF, 2 threads, 2026-11), for reference only, \
             not a ratio: prefill 343, decode batch 1 35.0, batch 16 S_TG 173 tokens/s"
        );
    }
}
