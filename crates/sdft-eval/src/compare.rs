//! Paired comparisons of two runs over the same rows: the difference of their
//! per-row scores with a paired bootstrap 95% interval, and one plain sentence
//! of verdict that follows from it.
//!
//! Both runs evaluate the same rows (same data, same `--limit`), so the rows'
//! differences carry the comparison: the bootstrap resamples row indices with
//! replacement (the same indices for both runs), and the interval is the 2.5th
//! and 97.5th percentile of the resampled mean differences. Rows are joined by
//! id from each run's `<benchmark>.parquet`; ids present in only one run are
//! left out (and counted).

use std::collections::BTreeMap;
use std::path::Path;

use sdft_core::rng::SplitMix64;

pub use crate::metric_names::{direction, higher_is_better, in_nats};
use crate::report::Run;
use crate::results::BenchResult;
use crate::{Error, Result};

/// Bootstrap resamples per comparison.
pub const RESAMPLES: usize = 10_000;

/// The paired difference `b − a` of one benchmark's per-row scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    pub benchmark: String,
    pub family: String,
    /// The per-row score compared, named as computed
    /// ([`crate::bench::row_metric`]: the primary metric, or `kl_response_mean`
    /// for drift and `row_mean_logprob` for task fit).
    pub metric: String,
    /// Run `a` is the seed of run `b`: the same model, `a` without an adapter and
    /// `b` with one (verdicts then name `a` "the seed").
    pub a_is_seed: bool,
    /// Rows present in both runs.
    pub n: usize,
    /// Rows present in only one of them (left out).
    pub unmatched: usize,
    pub mean_a: f64,
    pub mean_b: f64,
    /// `mean_b − mean_a`.
    pub diff: f64,
    /// The paired bootstrap 95% interval of `diff`.
    pub lo: f64,
    pub hi: f64,
}

impl Paired {
    /// Whether the interval excludes 0.
    pub fn significant(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

/// The percentile bootstrap 95% interval of the mean of `diffs` (resampling
/// with replacement, `resamples` times, seeded).
///
/// ```
/// use sdft_eval::compare::bootstrap_interval;
/// // Every difference is 1: every resample's mean is 1.
/// assert_eq!(bootstrap_interval(&[1.0; 20], 1000, 7), (1.0, 1.0));
/// let (lo, hi) = bootstrap_interval(&[0.0, 1.0, 0.0, 1.0], 2000, 7);
/// assert!(lo >= 0.0 && lo < 0.5 && hi > 0.5 && hi <= 1.0);
/// ```
pub fn bootstrap_interval(diffs: &[f64], resamples: usize, seed: u64) -> (f64, f64) {
    let n = diffs.len();
    if n == 0 || resamples == 0 {
        return (0.0, 0.0);
    }
    let mut rng = SplitMix64::new(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| diffs[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * resamples as f64).floor() as usize).min(resamples - 1)];
    (at(0.025), at(0.975))
}

/// Per-row scores of `benchmark` in a run directory (`<benchmark>.parquet`:
/// `id`, `score`), by id; `None` when the run has no such file.
pub fn row_scores(dir: &Path, benchmark: &str) -> Result<Option<BTreeMap<String, f64>>> {
    let path = dir.join(format!("{benchmark}.parquet"));
    if !path.is_file() {
        return Ok(None);
    }
    let records = sdft_data::read_records(&path, Some(sdft_data::Format::Parquet))?;
    let mut out = BTreeMap::new();
    for (i, r) in records.rows.into_iter().enumerate() {
        let row = r.ok_or_else(|| Error::file(&path, format!("row {}: unreadable", i + 1)))?;
        let id = row.get("id").and_then(|v| v.as_str());
        let score = row.get("score").and_then(|v| v.as_f64());
        match (id, score) {
            (Some(id), Some(s)) => {
                out.insert(id.to_string(), s);
            }
            _ => {
                return Err(Error::Row {
                    path: path.clone(),
                    row: i + 1,
                    expected: "a string `id` and a numeric `score`".into(),
                    found: format!("{:?}", row.get("id")),
                })
            }
        }
    }
    Ok(Some(out))
}

/// One benchmark both runs hold per-row scores for: each run's result and its
/// scores by row id.
pub struct SharedScores<'r> {
    pub a: &'r BenchResult,
    pub b: &'r BenchResult,
    pub scores_a: BTreeMap<String, f64>,
    pub scores_b: BTreeMap<String, f64>,
}

/// Every benchmark both runs hold per-row scores for, in `a`'s order, each
/// run's `<benchmark>.parquet` read once (the paired comparison and the flips
/// both work from these).
pub fn shared_scores<'r>(a: &'r Run, b: &'r Run) -> Result<Vec<SharedScores<'r>>> {
    let mut out = Vec::new();
    for ba in &a.results.benchmarks {
        let Some(bb) = b.results.get(&ba.benchmark) else {
            continue;
        };
        if let (Some(scores_a), Some(scores_b)) = (
            row_scores(&a.dir, &ba.benchmark)?,
            row_scores(&b.dir, &bb.benchmark)?,
        ) {
            out.push(SharedScores {
                a: ba,
                b: bb,
                scores_a,
                scores_b,
            });
        }
    }
    Ok(out)
}

/// `b − a` on every benchmark both runs hold per-row scores for, in `a`'s order.
pub fn paired(a: &Run, b: &Run, seed: u64) -> Result<Vec<Paired>> {
    Ok(paired_scores(&shared_scores(a, b)?, seed))
}

/// [`paired`] from scores already read.
pub fn paired_scores(shared: &[SharedScores<'_>], seed: u64) -> Vec<Paired> {
    let mut out = Vec::new();
    for s in shared {
        let (ba, bb, ra, rb) = (s.a, s.b, &s.scores_a, &s.scores_b);
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for (id, x) in ra {
            if let Some(y) = rb.get(id) {
                xs.push(*x);
                ys.push(*y);
            }
        }
        let n = xs.len();
        if n == 0 {
            continue;
        }
        let unmatched = ra.len() + rb.len() - 2 * n;
        let diffs: Vec<f64> = xs.iter().zip(&ys).map(|(x, y)| y - x).collect();
        let (lo, hi) = bootstrap_interval(&diffs, RESAMPLES, seed);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (ma, mb) = (&ba.hashes.model, &bb.hashes.model);
        let primary = ba.primary.as_deref().unwrap_or("score");
        out.push(Paired {
            benchmark: ba.benchmark.clone(),
            family: ba.family.clone(),
            metric: crate::metric_names::row_metric(&ba.family, primary).to_string(),
            a_is_seed: ma.adapter.is_none() && mb.adapter.is_some() && ma.id == mb.id,
            n,
            unmatched,
            mean_a: mean(&xs),
            mean_b: mean(&ys),
            diff: mean(&diffs),
            lo,
            hi,
        });
    }
    out
}

/// Formats a value of `family`'s per-row score: percentage points for rates,
/// nats per token for drift and task fit.
pub fn fmt_diff(family: &str, x: f64) -> String {
    if in_nats(family) {
        format!("{x:+.4} nats/token")
    } else {
        format!("{:+.1} points", 100.0 * x)
    }
}

/// One sentence that says what the paired comparison of run `a` (named `an`)
/// and run `b` (named `bn`) shows, and no more: which run is ahead and by how
/// much when the interval excludes 0, otherwise that there is no significant
/// difference. Where `a` is the seed of `b` it is called "the seed", and its
/// drift (from itself, 0) is not compared: the sentence says whether `b` drifted.
pub fn verdict(p: &Paired, an: &str, bn: &str) -> String {
    let ci = format!(
        "{bn} − {an} = {} (95% CI {} to {}, n={})",
        fmt_diff(&p.family, p.diff),
        fmt_diff(&p.family, p.lo),
        fmt_diff(&p.family, p.hi),
        p.n
    );
    let drift = p.family == "drift";
    let a_name = if p.a_is_seed { "the seed" } else { an };
    let head = match (p.significant(), drift && p.a_is_seed) {
        (true, true) => format!("{bn} has drifted from the seed"),
        (false, true) => format!("no measurable drift of {bn} from the seed"),
        (false, false) => format!("no significant difference between {bn} and {a_name}"),
        (true, false) => {
            let b_better = (p.diff > 0.0) == higher_is_better(&p.family, &p.metric);
            let (winner, loser) = if b_better { (bn, a_name) } else { (a_name, bn) };
            let what = if drift {
                "drifts less from the seed"
            } else if in_nats(&p.family) {
                "gives the references a higher likelihood"
            } else {
                "scores higher"
            };
            format!("{winner} {what} than {loser}")
        }
    };
    format!("{}: {head}: {ci}.", p.benchmark)
}
