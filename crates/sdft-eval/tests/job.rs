//! The suite layer: per-benchmark options and the summary lines `sdft eval run`
//! prints.

use sdft_eval::bench::Benchmark;
use sdft_eval::job::{per_benchmark, positive, EvalJob};
use sdft_eval::report::summary_line;
use sdft_eval::results::{BenchConfig, BenchResult, Hashes};
use sdft_eval::run::EvalOptions;
use sdft_eval::Metric;

fn result(benchmark: &str, family: &str, primary: &str, value: f64) -> BenchResult {
    BenchResult {
        benchmark: benchmark.into(),
        family: family.into(),
        primary: Some(primary.into()),
        n: 64,
        metrics: [(
            primary.to_string(),
            Metric {
                value,
                stderr: 0.0328,
                n: 64,
            },
        )]
        .into(),
        config: BenchConfig {
            template: "t".into(),
            prompt_format: sdft_data::PromptFormat::Chat,
            template_hash: String::new(),
            sampling: Default::default(),
            limit: None,
            seed: 42,
            samples: 1,
            num_fewshot: None,
            system_message: Default::default(),
        },
        hashes: Hashes {
            data_path: "d".into(),
            data_sha256: "h".into(),
            model: Default::default(),
        },
        generated: 0,
        wall_secs: 1.0,
    }
}

#[test]
fn summary_lines_show_rates_in_percent_and_log_probabilities_in_nats() {
    let ll = summary_line(&result("gsm8k_ll", "task fit", "logprob", -1.3399));
    assert!(
        ll.starts_with("gsm8k_ll: logprob: -1.3399 ± 0.0328 (n=64) nats/token"),
        "{ll}"
    );
    let acc = summary_line(&result("arc_easy", "knowledge", "acc", 0.4525));
    assert!(
        acc.starts_with("arc_easy: acc: 45.25% ± 3.28 (n=64; 28.96 / 64)"),
        "{acc}"
    );
}

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
