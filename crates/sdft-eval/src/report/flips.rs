//! Per-item flips between two runs: on a benchmark scored right or wrong per row
//! (every per-row score 0 or 1 in both runs), the rows right in one run and wrong
//! in the other, each way. A mean difference of zero can hide many flips each
//! way; these say which rows moved.

use std::collections::BTreeMap;

use super::Run;
use crate::compare::{shared_scores, SharedScores};
use crate::Result;

/// How many ids of each direction the report lists.
const SHOWN: usize = 8;

/// The rows of one benchmark that changed between run `a` and run `b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Flips {
    pub benchmark: String,
    /// Rows scored in both runs.
    pub n: usize,
    /// Right in `a`, wrong in `b`.
    pub lost: Vec<String>,
    /// Wrong in `a`, right in `b`.
    pub gained: Vec<String>,
}

fn binary(scores: &BTreeMap<String, f64>) -> bool {
    scores.values().all(|&s| s == 0.0 || s == 1.0)
}

/// The flips of every benchmark both runs scored right-or-wrong per row, in
/// `a`'s benchmark order.
pub fn flips(a: &Run, b: &Run) -> Result<Vec<Flips>> {
    Ok(flips_of(&shared_scores(a, b)?))
}

/// [`flips`] from scores already read.
pub fn flips_of(shared: &[SharedScores<'_>]) -> Vec<Flips> {
    let mut out = Vec::new();
    for s in shared {
        let (ra, rb) = (&s.scores_a, &s.scores_b);
        if !binary(ra) || !binary(rb) {
            continue;
        }
        let mut f = Flips {
            benchmark: s.a.benchmark.clone(),
            n: 0,
            lost: Vec::new(),
            gained: Vec::new(),
        };
        for (id, x) in ra {
            let Some(y) = rb.get(id) else { continue };
            f.n += 1;
            if x > y {
                f.lost.push(id.clone());
            } else if y > x {
                f.gained.push(id.clone());
            }
        }
        if f.n > 0 {
            out.push(f);
        }
    }
    out
}

fn ids(v: &[String]) -> String {
    if v.is_empty() {
        return String::new();
    }
    let mut s = v[..v.len().min(SHOWN)]
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if v.len() > SHOWN {
        s.push_str(&format!(", … ({} more)", v.len() - SHOWN));
    }
    s
}

/// The flips as a Markdown table (empty when no benchmark is scored
/// right-or-wrong per row).
pub fn flips_section(a: &Run, b: &Run, flips: &[Flips]) -> String {
    if flips.is_empty() {
        return String::new();
    }
    let mut md = format!(
        "\nPer-item flips, {a} → {b} (rows scored right or wrong): right in {a} and wrong in {b} \
         (lost), and the reverse (gained).\n\n| benchmark | n | lost | gained | lost rows | gained rows |\n| --- | ---: | ---: | ---: | --- | --- |\n",
        a = a.name,
        b = b.name
    );
    for f in flips {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            f.benchmark,
            f.n,
            f.lost.len(),
            f.gained.len(),
            ids(&f.lost),
            ids(&f.gained)
        ));
    }
    md
}
