//! The suite layer: per-benchmark options, the knowledge benchmarks' prompt
//! format, the checks made before a model loads.

use sdft_eval::bench::Benchmark;
use sdft_eval::job::{per_benchmark, positive, EvalJob};
use sdft_eval::run::EvalOptions;

#[test]
fn per_benchmark_options_name_selected_benchmarks_and_advbench_names_both() {
    let benches = Benchmark::parse_list("advbench,humaneval").unwrap();
    let m = per_benchmark(
        "--limits",
        Some("advbench=8, humaneval=4"),
        &benches,
        false,
        positive("rows"),
    )
    .unwrap();
    assert_eq!(m.get("advbench_raw"), Some(&8));
    assert_eq!(m.get("advbench_jailbreak"), Some(&8));
    assert_eq!(m.get("humaneval"), Some(&4));
    let e = per_benchmark(
        "--limits",
        Some("gsm8k=3"),
        &benches,
        false,
        positive("rows"),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("`gsm8k` is not among the selected benchmarks"),
        "{e}"
    );
    let e = per_benchmark("--limits", Some("8"), &benches, false, positive("rows")).unwrap_err();
    assert!(e.to_string().contains("expected BENCH=VALUE"), "{e}");
    let e = per_benchmark(
        "--limits",
        Some("humaneval=0"),
        &benches,
        false,
        positive("rows"),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("not a positive number of rows"),
        "{e}"
    );
    let all = per_benchmark("--system-message", Some("model"), &benches, true, |v| {
        Ok(v.to_string())
    })
    .unwrap();
    assert_eq!(all.len(), 3);
}

#[test]
fn knowledge_benchmarks_score_raw_text_unless_a_format_was_asked_for() {
    let benches = Benchmark::parse_list("arc_easy,gsm8k").unwrap();
    let mut opts = EvalOptions::new("run", "data");
    opts.prompt_format = sdft_data::PromptFormat::Chat;
    let mut job = EvalJob::new(benches.clone(), opts);
    job.limits.insert("gsm8k".into(), 5);
    assert_eq!(
        job.options_for(&benches[0]).prompt_format,
        sdft_data::PromptFormat::Paper
    );
    assert_eq!(
        job.options_for(&benches[1]).prompt_format,
        sdft_data::PromptFormat::Chat
    );
    assert_eq!(job.options_for(&benches[1]).limit, Some(5));
    job.prompt_format_given = true;
    assert_eq!(
        job.options_for(&benches[0]).prompt_format,
        sdft_data::PromptFormat::Chat
    );
}

#[test]
fn humaneval_is_refused_without_permission_to_run_code() {
    let job = EvalJob::new(
        Benchmark::parse_list("humaneval").unwrap(),
        EvalOptions::new("run", "data"),
    );
    let e = job.check().unwrap_err();
    assert!(e.to_string().contains("--allow-code-execution"), "{e}");
}
