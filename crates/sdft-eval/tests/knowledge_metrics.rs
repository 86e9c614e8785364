//! The knowledge benchmarks' metric arithmetic on fixed log-likelihoods, worked
//! by hand from lm-eval's rules (`lm_eval/api/task.py` `process_results`:
//! `acc` = argmax of the log-likelihoods, `acc_norm` = argmax of the
//! log-likelihoods over each choice's length in characters;
//! `lm_eval/api/metrics.py` `mean_stderr`, `pooled_sample_stderr`).

use sdft_eval::knowledge::data::{Fewshot, Split};
use sdft_eval::knowledge::score::{decide, metrics, pooled};
use sdft_eval::knowledge::{prepare, Doc, Task};
use sdft_eval::Metric;

fn doc(choices: &[&str], gold: usize, subject: Option<&str>) -> Doc {
    Doc {
        id: "d".into(),
        contexts: vec!["Question: q\nAnswer:".into()],
        continuations: choices.iter().map(|c| format!(" {c}")).collect(),
        choices: choices.iter().map(|c| c.to_string()).collect(),
        gold,
        subject: subject.map(str::to_string),
    }
}

#[test]
fn acc_and_acc_norm_of_one_document() {
    // acc: -4 is the largest, "ab". acc_norm: "ab" -4 / 2 = -2, "abcdefgh"
    // -6 / 8 = -0.75, "é" -5 / 1 = -5: "abcdefgh".
    let d = doc(&["ab", "abcdefgh", "é"], 1, None);
    let o = decide(&d, vec![-4.0, -6.0, -5.0]);
    assert_eq!((o.pred, o.pred_norm), (0, 1));
    assert_eq!((o.acc, o.acc_norm), (0.0, 1.0));
    // Characters, not bytes: "ab" -1.4 / 2 = -0.7 beats "éé" (2 characters,
    // 4 bytes) -1.5 / 2 = -0.75; by bytes "éé" would win with -1.5 / 4 = -0.375.
    let d = doc(&["ab", "éé"], 0, None);
    let o = decide(&d, vec![-1.4, -1.5]);
    assert_eq!(o.pred_norm, 0);
    // Ties go to the first choice (numpy argmax).
    let o = decide(&doc(&["x", "y"], 1, None), vec![-1.0, -1.0]);
    assert_eq!((o.pred, o.acc), (0, 0.0));
}

fn run(
    task: Task,
    docs: Vec<Doc>,
    lls: Vec<Vec<f64>>,
) -> std::collections::BTreeMap<String, Metric> {
    let mut by: Vec<Split> = Vec::new();
    for d in docs {
        match by.last_mut() {
            Some(s) if s.subject == d.subject => s.docs.push(d),
            _ => by.push(Split {
                subject: d.subject.clone(),
                docs: vec![d],
                fewshot: Fewshot::SameSplit,
            }),
        }
    }
    let p = prepare(task, &by, None, 0, 0);
    let outcomes: Vec<_> = p.iter().zip(lls).map(|(p, l)| decide(p.doc, l)).collect();
    metrics(task, &p, &outcomes)
}

#[test]
fn mean_and_sample_stderr() {
    // Four ARC documents: right, right, wrong, right by acc; acc_norm 2 of 4.
    let docs = vec![
        doc(&["a", "bbbb"], 0, None),
        doc(&["a", "bbbb"], 0, None),
        doc(&["a", "bbbb"], 1, None),
        doc(&["aaaa", "b"], 1, None),
    ];
    let lls = vec![
        vec![-1.0, -3.0],
        vec![-1.0, -2.0],
        vec![-1.0, -3.0],
        vec![-5.0, -2.0],
    ];
    // acc: [1, 1, 0, 1]; acc_norm: [-1 vs -0.75 -> 1 (wrong), -1 vs -0.5 -> 1
    // (wrong), -1 vs -0.75 -> 1 (right), -1.25 vs -2 -> 0 (wrong)] = [0, 0, 1, 0].
    let m = run(Task::ArcEasy, docs, lls);
    assert_eq!(m["acc"].value, 0.75);
    // s^2 = (3 * 0.0625 + 0.5625) / 3 = 0.25; stderr = sqrt(0.25 / 4) = 0.25.
    assert!((m["acc"].stderr - 0.25).abs() < 1e-12);
    assert_eq!(m["acc_norm"].value, 0.25);
    assert_eq!(m["acc_norm"].n, 4);
    // Winogrande reports acc only.
    let w = run(
        Task::Winogrande,
        vec![doc(&["a", "b"], 0, None)],
        vec![vec![-1.0, -2.0]],
    );
    assert!(w.contains_key("acc") && !w.contains_key("acc_norm"));
}

#[test]
fn mmlu_subjects_categories_and_pooled_stderr() {
    // Two STEM subjects and one humanities subject.
    let mut docs = Vec::new();
    let mut lls = Vec::new();
    let right = vec![-1.0, -2.0, -3.0, -4.0];
    let wrong = vec![-4.0, -1.0, -3.0, -4.0];
    for (subject, results) in [
        ("abstract_algebra", vec![true, false]),
        ("anatomy", vec![true, true, true, false]),
        ("philosophy", vec![false, false, true]),
    ] {
        for r in results {
            docs.push(doc(&["A", "B", "C", "D"], 0, Some(subject)));
            lls.push(if r { right.clone() } else { wrong.clone() });
        }
    }
    let m = run(Task::Mmlu, docs, lls);
    let aa = m["acc:abstract_algebra"];
    let an = m["acc:anatomy"];
    let ph = m["acc:philosophy"];
    assert_eq!((aa.value, an.value, ph.n), (0.5, 0.75, 3));
    // Sample stderrs: abstract_algebra s^2 = 0.5, se^2 = 0.25; anatomy s^2 = 0.25,
    // se^2 = 0.0625; philosophy mean 1/3, s^2 = 1/3, se^2 = 1/9.
    assert!((aa.stderr.powi(2) - 0.25).abs() < 1e-12);
    assert!((an.stderr.powi(2) - 0.0625).abs() < 1e-12);
    assert!((ph.stderr.powi(2) - 1.0 / 9.0).abs() < 1e-12);
    // STEM: value (1 + 3) / 6; pooled var = ((2-1)*0.25*2 + (4-1)*0.0625*4) / (6 - 2)
    // = (0.5 + 0.75) / 4 = 0.3125; stderr = sqrt(0.3125 / 6).
    let stem = m["acc_stem"];
    assert!((stem.value - 4.0 / 6.0).abs() < 1e-12);
    assert!((stem.stderr - (0.3125f64 / 6.0).sqrt()).abs() < 1e-12);
    assert_eq!(stem.n, 6);
    // Humanities: one subject, var = (3-1)*(1/9)*3 / (3-1) = 1/3; stderr = sqrt(1/9).
    let hum = m["acc_humanities"];
    assert!((hum.stderr - (1.0f64 / 9.0).sqrt()).abs() < 1e-12);
    // mmlu pools the categories: value 5/9; var = ((6-1)*(0.3125/6)*6 +
    // (3-1)*(1/9)*3) / (9 - 2) = (1.5625 + 0.6667) / 7.
    let all = m["acc"];
    assert!((all.value - 5.0 / 9.0).abs() < 1e-12);
    let var = (1.5625 + 2.0 / 3.0) / 7.0;
    assert!((all.stderr - (var / 9.0f64).sqrt()).abs() < 1e-12);
    assert!(!m.contains_key("acc_other") && !m.contains_key("acc_norm"));
    // Pooling one-item members leaves no degrees of freedom: stderr 0.
    let one = Metric {
        value: 1.0,
        stderr: 0.0,
        n: 1,
    };
    assert_eq!(pooled(&[one, one]).stderr, 0.0);
}
