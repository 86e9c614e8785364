//! Per-document decisions and the metrics lm-eval reports for these tasks
//! (`lm_eval/api/task.py` `process_results` for `multiple_choice`,
//! `lm_eval/api/metrics.py` `mean_stderr` and `pooled_sample_stderr`).

use std::collections::BTreeMap;

use super::tasks::{Doc, Task};
use super::Prepared;
use crate::Metric;

/// What the model chose for one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub loglik: Vec<f64>,
    /// `argmax(loglik)`, the first on ties (numpy's `argmax`).
    pub pred: usize,
    /// `argmax(loglik / len(choice))`, lengths in characters (Python `len`).
    pub pred_norm: usize,
    pub acc: f64,
    pub acc_norm: f64,
}

/// Picks the answers from per-choice log-likelihoods.
pub fn decide(doc: &Doc, loglik: Vec<f64>) -> Outcome {
    let (pred, pred_norm) = crate::mc::choose(&loglik, &doc.choices);
    let hit = |p: usize| f64::from(u8::from(p == doc.gold));
    Outcome {
        pred,
        pred_norm,
        acc: hit(pred),
        acc_norm: hit(pred_norm),
        loglik,
    }
}

/// lm-eval's `pooled_sample_stderr`: the standard error of a group's
/// size-weighted mean from its members' standard errors and sizes,
/// `sqrt(sum((n_i - 1) * se_i^2 * n_i) / (N - k) / N)`; 0 where `N <= k`.
pub fn pooled(members: &[Metric]) -> Metric {
    let n: usize = members.iter().map(|m| m.n).sum();
    if n == 0 {
        return Metric::from_scores(&[]);
    }
    let value = members.iter().map(|m| m.value * m.n as f64).sum::<f64>() / n as f64;
    let k = members.len();
    let stderr = if n > k {
        let var = members
            .iter()
            .map(|m| (m.n as f64 - 1.0) * m.stderr.powi(2) * m.n as f64)
            .sum::<f64>()
            / (n - k) as f64;
        (var / n as f64).sqrt()
    } else {
        0.0
    };
    Metric { value, stderr, n }
}

/// MMLU's category of a subject (lm-eval `tasks/mmlu/_generate_configs.py`
/// `SUBJECTS`): `stem`, `humanities`, `social_sciences` or `other`.
pub fn mmlu_category(subject: &str) -> Option<&'static str> {
    const STEM: &[&str] = &[
        "abstract_algebra",
        "anatomy",
        "astronomy",
        "college_biology",
        "college_chemistry",
        "college_computer_science",
        "college_mathematics",
        "college_physics",
        "computer_security",
        "conceptual_physics",
        "electrical_engineering",
        "elementary_mathematics",
        "high_school_biology",
        "high_school_chemistry",
        "high_school_computer_science",
        "high_school_mathematics",
        "high_school_physics",
        "high_school_statistics",
        "machine_learning",
    ];
    const HUMANITIES: &[&str] = &[
        "formal_logic",
        "high_school_european_history",
        "high_school_us_history",
        "high_school_world_history",
        "international_law",
        "jurisprudence",
        "logical_fallacies",
        "moral_disputes",
        "moral_scenarios",
        "philosophy",
        "prehistory",
        "professional_law",
        "world_religions",
    ];
    const SOCIAL: &[&str] = &[
        "econometrics",
        "high_school_geography",
        "high_school_government_and_politics",
        "high_school_macroeconomics",
        "high_school_microeconomics",
        "high_school_psychology",
        "human_sexuality",
        "professional_psychology",
        "public_relations",
        "security_studies",
        "sociology",
        "us_foreign_policy",
    ];
    const OTHER: &[&str] = &[
        "business_ethics",
        "clinical_knowledge",
        "college_medicine",
        "global_facts",
        "human_aging",
        "management",
        "marketing",
        "medical_genetics",
        "miscellaneous",
        "nutrition",
        "professional_accounting",
        "professional_medicine",
        "virology",
    ];
    [
        ("stem", STEM),
        ("humanities", HUMANITIES),
        ("social_sciences", SOCIAL),
        ("other", OTHER),
    ]
    .into_iter()
    .find(|(_, l)| l.contains(&subject))
    .map(|(c, _)| c)
}

/// The benchmark's metrics: `acc` (and `acc_norm` where lm-eval reports it) as
/// means with the sample standard error; for MMLU, `acc:<subject>` per subject,
/// `acc_stem`, `acc_humanities`, `acc_social_sciences`, `acc_other` pooled from
/// their subjects and `acc` pooled from the four categories, each weighted by
/// size, as lm-eval aggregates the `mmlu` group.
pub fn metrics(
    task: Task,
    docs: &[Prepared<'_>],
    outcomes: &[Outcome],
) -> BTreeMap<String, Metric> {
    let mut m = BTreeMap::new();
    if task != Task::Mmlu {
        let acc: Vec<f64> = outcomes.iter().map(|o| o.acc).collect();
        m.insert("acc".to_string(), Metric::from_scores(&acc));
        if task.has_acc_norm() {
            let norm: Vec<f64> = outcomes.iter().map(|o| o.acc_norm).collect();
            m.insert("acc_norm".to_string(), Metric::from_scores(&norm));
        }
        return m;
    }
    let mut by_subject: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (p, o) in docs.iter().zip(outcomes) {
        let s = p.doc.subject.as_deref().unwrap_or("");
        by_subject.entry(s).or_default().push(o.acc);
    }
    let mut by_category: BTreeMap<&str, Vec<Metric>> = BTreeMap::new();
    for (s, v) in &by_subject {
        let metric = Metric::from_scores(v);
        m.insert(format!("acc:{s}"), metric);
        by_category
            .entry(mmlu_category(s).unwrap_or("other"))
            .or_default()
            .push(metric);
    }
    let mut categories = Vec::new();
    for (c, members) in &by_category {
        let metric = pooled(members);
        m.insert(format!("acc_{c}"), metric);
        categories.push(metric);
    }
    m.insert("acc".to_string(), pooled(&categories));
    m
}
