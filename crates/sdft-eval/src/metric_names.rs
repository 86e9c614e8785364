//! What a metric's name says about it: whether higher is better (and the arrow
//! the report shows), whether its per-row score is in nats, and which per-row
//! score the paired comparisons use. Shared by the benchmarks, the comparisons
//! and the report.

/// Whether a higher value of `metric` (of a benchmark of `family`) is better:
/// everything but drift's divergences (`kl`, `kl_response_mean`: lower is closer
/// to the seed), AdvBench's `attack_success_rate` and the share of unreadable
/// judge replies.
pub fn higher_is_better(family: &str, metric: &str) -> bool {
    !((family == "drift" && metric.starts_with("kl"))
        || matches!(metric, "attack_success_rate" | "judge_unparsed"))
}

/// `↑` where a higher value of `metric` is better, `↓` where a lower one is.
pub fn direction(family: &str, metric: &str) -> &'static str {
    if higher_is_better(family, metric) {
        "↑"
    } else {
        "↓"
    }
}

/// Whether this family's per-row score is in nats per token (drift, task fit)
/// rather than a rate.
pub fn in_nats(family: &str) -> bool {
    matches!(family, "drift" | "task fit")
}

/// The per-row score of a benchmark of `family` whose primary metric is
/// `primary` (see [`crate::bench::Benchmark::row_metric`]).
pub fn row_metric<'a>(family: &str, primary: &'a str) -> &'a str {
    match family {
        "drift" => "kl_response_mean",
        "task fit" => "row_mean_logprob",
        _ => primary,
    }
}
