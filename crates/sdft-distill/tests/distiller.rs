//! The distillation stage over a scripted generator: prompts, verdicts, fallback
//! accounting, empty rows, resume from chunks, shards and export.

use std::collections::{HashMap, HashSet};

use sdft_core::{
    Completion, Example, FinishReason, GenerationRequest, Generator, Prompt, SamplingParams, Score,
    ScoreRequest, Scorer, Turn,
};
use sdft_data::{ColumnMap, Dataset, ReadOptions, ResolvedColumns, Template};
use sdft_distill::{
    measure_gap, merge_shards, read_rows, ChunkStore, DistillConfig, DistilledRow, Distiller,
    EmptyPolicy, Manifest, Shard, Sink, Summary, Task,
};

/// Answers each id with a scripted text and records the prompts it was shown.
#[derive(Default)]
struct Scripted {
    answers: HashMap<String, String>,
    seen: Vec<(String, Prompt)>,
}

impl Generator for Scripted {
    fn generate_each(
        &mut self,
        reqs: &[GenerationRequest],
        _: &SamplingParams,
        done: &mut dyn FnMut(usize, &Completion),
    ) -> sdft_core::Result<Vec<Completion>> {
        let out: Vec<Completion> = reqs
            .iter()
            .map(|r| {
                self.seen.push((r.id.clone(), r.prompt.clone()));
                let text = self.answers.get(&r.id).cloned().unwrap_or_default();
                Completion {
                    tokens: text.split_whitespace().count(),
                    text,
                    finish_reason: FinishReason::Eos,
                }
            })
            .collect();
        out.iter().enumerate().for_each(|(i, c)| done(i, c));
        Ok(out)
    }

    fn count_tokens(&self, prompt: &Prompt) -> Option<usize> {
        Some(
            prompt
                .display_with("<s>", "</s>")
                .split_whitespace()
                .count(),
        )
    }
}

fn gsm8k_rows() -> (Vec<Example>, Scripted) {
    let data = vec![
        Example::new(
            "Ann has 2 cats and gets 3 more. How many?",
            "2 + 3 = 5\nThe answer is 5.",
        )
        .with_id("ok"),
        Example::new("What is 10 * 100?", "10 * 100 = 1,000\nThe answer is 1000.").with_id("sep"),
        Example::new("What is 7 - 9?", "7 - 9 = -2\nThe answer is -2.").with_id("wrong"),
        Example::new("What is 1 + 1?", "The answer is 2.").with_id("banned"),
        Example::new("What is 3 + 3?", "The answer is 6.").with_id("nonum"),
    ];
    let mut g = Scripted::default();
    for (id, text) in [
        ("ok", "  Ann ends with 2 + 3 = 5 cats.\nThe answer is 5.  "),
        ("sep", "Ten hundreds make 1,000."),
        ("wrong", "7 - 9 = 2. The answer is 2."),
        ("banned", "Like the reference answer, 1 + 1 = 2."),
        ("nonum", "Six."),
    ] {
        g.answers.insert(id.into(), text.into());
    }
    (data, g)
}

#[test]
fn gsm8k_prompts_verdicts_and_fallbacks() {
    let (data, mut g) = gsm8k_rows();
    let d = Distiller::new(DistillConfig::builder(Task::Gsm8k).build().unwrap());
    let mut rows: Vec<DistilledRow> = Vec::new();
    let stats = d.run(&mut g, &data, &mut rows, &mut |_| {}).unwrap();
    assert_eq!((stats.rows, stats.generated), (5, 5));
    let by: HashMap<&str, &DistilledRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    // The forced assistant prefix ends the prompt and is not part of the rewrite.
    let ok = by["ok"];
    assert!(
        ok.prompt
            .ends_with("[/INST] Great! Let's think step by step. "),
        "{}",
        ok.prompt
    );
    assert!(
        ok.prompt.contains("2 + 3 = 5\nThe answer is 5."),
        "the reference is shown"
    );
    assert_eq!(
        ok.distilled.as_deref(),
        Some("Ann ends with 2 + 3 = 5 cats.\nThe answer is 5.")
    );
    assert!(ok.kept && ok.response == ok.distilled.clone().unwrap() && ok.reason.is_none());
    assert!(by["sep"].kept, "1,000 equals 1000");
    for (id, check) in [
        ("wrong", "math_answer"),
        ("banned", "ban_phrase"),
        ("nonum", "math_answer"),
    ] {
        let r = by[id];
        assert!(!r.kept, "{id}");
        assert_eq!(r.response, r.original, "{id} falls back to the reference");
        assert_eq!(r.reason_key(), Some(check), "{id}: {:?}", r.reason);
        assert!(
            r.distilled.is_some(),
            "{id}: the rejected rewrite is kept for inspection"
        );
    }
    let s = Summary::from_rows("out.parquet".as_ref(), &rows, Manifest::default());
    assert_eq!((s.rows, s.kept, s.fallback), (5, 2, 3));
    assert_eq!(s.fallback_by_reason["math_answer"], 2);
    assert_eq!(s.fallback_by_reason["ban_phrase"], 1);
    assert!(s.render().contains("kept rewrites: 2 (40.0%)"));
    // Token counts come from the generator.
    assert_eq!(ok.completion_tokens, Some(13));
    assert!(ok.prompt_tokens.unwrap() > 10);
    assert_eq!(ok.finish_reason.as_deref(), Some("eos"));
}

#[test]
fn multi_turn_regenerates_only_the_final_turn() {
    let mut ex = Example::new("And in French?", "Bonjour.").with_id("mt");
    ex.history = vec![Turn::new("Say hello.", "Hello.")];
    let mut g = Scripted::default();
    g.answers.insert("mt".into(), "Bonjour !".into());
    let d = Distiller::new(DistillConfig::builder(Task::Lima).build().unwrap());
    let mut rows: Vec<DistilledRow> = Vec::new();
    d.run(&mut g, &[ex.clone()], &mut rows, &mut |_| {})
        .unwrap();
    let shown = g.seen[0].1.display_with("<s>", "</s>");
    // Turn 1 in full with its own reference, then turn 2's prompt with its reference.
    assert!(
        shown.contains("Say hello.\n\n### Reference Answer:\nHello.\n\n### Response:\nHello.</s>"),
        "{shown}"
    );
    assert!(
        shown.ends_with("And in French?\n\n### Reference Answer:\nBonjour.\n\n### Response:\n"),
        "{shown}"
    );
    let r = &rows[0];
    assert_eq!(r.history, ex.history, "earlier turns are kept as they were");
    assert_eq!(
        (r.original.as_str(), r.response.as_str()),
        ("Bonjour.", "Bonjour !")
    );
    // Training supervises the history plus the rewritten final turn.
    assert_eq!(r.to_example().output, "Bonjour !");
}

#[test]
fn empty_rows_are_reported_by_id() {
    let data = vec![
        Example::new("", "orphan answer").with_id("no-instr"),
        Example::new("question", "   ").with_id("no-out"),
        Example::new("q", "a").with_id("fine"),
    ];
    for (policy, rows_out) in [(EmptyPolicy::Keep, 3), (EmptyPolicy::Skip, 1)] {
        let mut g = Scripted::default();
        g.answers.insert("fine".into(), "b".into());
        let d = Distiller::new(
            DistillConfig::builder(Task::Alpaca)
                .on_empty(policy)
                .build()
                .unwrap(),
        );
        let mut rows: Vec<DistilledRow> = Vec::new();
        let stats = d.run(&mut g, &data, &mut rows, &mut |_| {}).unwrap();
        assert_eq!(rows.len(), rows_out, "{policy:?}");
        assert_eq!(g.seen.len(), 1, "empty rows are never sent to the model");
        match policy {
            EmptyPolicy::Keep => {
                let r = rows.iter().find(|r| r.id == "no-out").unwrap();
                assert_eq!((r.kept, r.reason.as_deref()), (false, Some("empty_output")));
                assert!(r.distilled.is_none());
                let r = rows.iter().find(|r| r.id == "no-instr").unwrap();
                assert_eq!(r.reason.as_deref(), Some("empty_instruction"));
                assert!(stats.skipped.is_empty());
            }
            EmptyPolicy::Skip => {
                let ids: Vec<&str> = stats.skipped.iter().map(|s| s.id.as_str()).collect();
                assert_eq!(ids, ["no-instr", "no-out"]);
            }
        }
    }
}

/// A sink that fails after `n` writes, like a process killed mid-run.
struct Dies {
    inner: ChunkStore,
    left: usize,
}

impl Sink for Dies {
    fn write(&mut self, rows: &[DistilledRow]) -> sdft_distill::Result<()> {
        if self.left == 0 {
            return Err(sdft_distill::Error::Merge {
                message: "killed".into(),
            });
        }
        self.left -= 1;
        self.inner.write(rows)
    }
}

fn many(n: usize) -> (Vec<Example>, Scripted) {
    let mut g = Scripted::default();
    let data: Vec<Example> = (0..n)
        .map(|i| {
            let id = format!("r{i}");
            g.answers
                .insert(id.clone(), format!("Rewrite {i}. The answer is {}.", i % 4));
            Example::new(format!("question {i}"), format!("The answer is {}.", i % 3)).with_id(id)
        })
        .collect();
    (data, g)
}

#[test]
fn interrupted_runs_resume_to_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mut g) = many(23);
    let order: Vec<String> = data.iter().map(|e| e.id.clone()).collect();
    let cfg = || {
        DistillConfig::builder(Task::Gsm8k)
            .flush_rows(5)
            .build()
            .unwrap()
    };
    // Uninterrupted.
    let full = dir.path().join("full.parquet");
    let (mut store, done) = ChunkStore::open(&full).unwrap();
    assert!(done.is_empty());
    let d = Distiller::new(cfg());
    d.run(&mut g, &data, &mut store, &mut |_| {}).unwrap();
    let (_, mut rows) = ChunkStore::open(&full).unwrap();
    assert_eq!(rows.len(), 23);
    let (store, _) = ChunkStore::open(&full).unwrap();
    let want = store.finish(&full, &order, &mut rows).unwrap();
    assert!(
        !ChunkStore::dir_for(&full).exists(),
        "chunks removed at the end"
    );
    assert_eq!(read_rows(&full).unwrap(), want);
    // Killed after two chunks, then resumed.
    let out = dir.path().join("out.parquet");
    let (store, _) = ChunkStore::open(&out).unwrap();
    let mut dies = Dies {
        inner: store,
        left: 2,
    };
    assert!(d.run(&mut g, &data, &mut dies, &mut |_| {}).is_err());
    // A torn temporary file from the kill is ignored.
    std::fs::write(
        ChunkStore::dir_for(&out).join(".chunk-000002.parquet.tmp-1"),
        b"PAR",
    )
    .unwrap();
    let (mut store, done) = ChunkStore::open(&out).unwrap();
    assert_eq!(done.len(), 10, "two chunks of five survived");
    let rest: Vec<Example> = data
        .iter()
        .filter(|e| !done.contains_key(&e.id))
        .cloned()
        .collect();
    d.run(&mut g, &rest, &mut store, &mut |_| {}).unwrap();
    let (store, mut rows) = ChunkStore::open(&out).unwrap();
    let got = store.finish(&out, &order, &mut rows).unwrap();
    assert_eq!(got, want);
    // A rerun of a finished output finds every row done.
    let (_, done) = ChunkStore::open(&out).unwrap();
    assert_eq!(done.len(), 23);
    let _ = done;
}

#[test]
fn shards_partition_and_merge_back() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mut g) = many(30);
    let order: Vec<String> = data.iter().map(|e| e.id.clone()).collect();
    let d = Distiller::new(DistillConfig::builder(Task::Gsm8k).build().unwrap());
    let mut all: Vec<DistilledRow> = Vec::new();
    d.run(&mut g, &data, &mut all, &mut |_| {}).unwrap();
    let mut paths = Vec::new();
    for k in 0..3 {
        let shard = Shard { index: k, count: 3 };
        let part: Vec<Example> = data
            .iter()
            .filter(|e| shard.contains(&e.id))
            .cloned()
            .collect();
        let mut rows: Vec<DistilledRow> = Vec::new();
        d.run(&mut g, &part, &mut rows, &mut |_| {}).unwrap();
        let p = dir.path().join(format!("shard{k}.parquet"));
        sdft_distill::write_rows(&p, &rows).unwrap();
        paths.push(p);
    }
    let merged = merge_shards(&paths, &order, &HashSet::new()).unwrap();
    let mut want = all.clone();
    want.sort_by_key(|r| order.iter().position(|o| *o == r.id));
    assert_eq!(merged, want);
    // A missing shard is reported with its ids; a duplicated one too.
    let e = merge_shards(&paths[..2], &order, &HashSet::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("source ids in no shard: r"), "{e}");
    let dup = vec![
        paths[0].clone(),
        paths[0].clone(),
        paths[1].clone(),
        paths[2].clone(),
    ];
    let e = merge_shards(&dup, &order, &HashSet::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("in more than one shard"), "{e}");
    let e = merge_shards(&paths, &order[..29], &HashSet::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 ids not in the source data: r29"), "{e}");
}

#[test]
fn export_keeps_the_source_layout() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("gsm8k.json");
    std::fs::write(
        &src,
        r#"[{"question": "What is 2 + 2?", "answer": "2 + 2 = 4\nThe answer is 4."}]"#,
    )
    .unwrap();
    let ds = Dataset::read(&src, &ReadOptions::new().columns(ColumnMap::new())).unwrap();
    let mut g = Scripted::default();
    g.answers.insert(
        ds.examples[0].id.clone(),
        "Two and two make 4. The answer is 4.".into(),
    );
    let d = Distiller::new(DistillConfig::builder(Task::Gsm8k).build().unwrap());
    let mut rows: Vec<DistilledRow> = Vec::new();
    d.run(&mut g, &ds.examples, &mut rows, &mut |_| {}).unwrap();
    let out = dir.path().join("distilled_gsm8k.json");
    sdft_distill::export(&out, &rows, &ds.report.mapping).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"question": "What is 2 + 2?", "answer": "Two and two make 4. The answer is 4."}])
    );
    // The distillation output itself reads back as a dataset whose output is `response`.
    let p = dir.path().join("d.parquet");
    sdft_distill::write_rows(&p, &rows).unwrap();
    let back = Dataset::read(&p, &ReadOptions::new()).unwrap();
    assert_eq!(
        back.examples[0].output,
        "Two and two make 4. The answer is 4."
    );
    assert_eq!(back.examples[0].id, rows[0].id);
    let _ = ResolvedColumns::clone(&ds.report.mapping);
}

/// Scores a continuation by its length: each byte costs -0.1 nats per token.
struct ByLength;

impl Scorer for ByLength {
    fn score(&mut self, reqs: &[ScoreRequest]) -> sdft_core::Result<Vec<Score>> {
        Ok(reqs
            .iter()
            .map(|r| {
                let text = r.continuation.display_with("", "");
                Score {
                    sum_logprob: -0.1 * text.len() as f64,
                    tokens: text.split_whitespace().count().max(1),
                }
            })
            .collect())
    }
}

#[test]
fn gap_scores_original_and_chosen_under_the_training_template() {
    let (data, mut g) = gsm8k_rows();
    let d = Distiller::new(DistillConfig::builder(Task::Gsm8k).build().unwrap());
    let mut rows: Vec<DistilledRow> = Vec::new();
    d.run(&mut g, &data, &mut rows, &mut |_| {}).unwrap();
    let t = Template::load("gsm8k").unwrap();
    let mut calls = 0;
    let gap = measure_gap(&mut ByLength, &t, &rows, 2, &mut |_, _| calls += 1).unwrap();
    assert_eq!(calls, 4, "5 originals + 2 kept rewrites in batches of 2");
    assert_eq!(gap.template, "gsm8k");
    assert_eq!(
        (gap.original.rows, gap.chosen.rows, gap.kept_chosen.rows),
        (5, 5, 2)
    );
    // Hand-computed for the two kept rows: originals "2 + 3 = 5\nThe answer is 5."
    // (26 bytes, 9 words) and "10 * 100 = 1,000\nThe answer is 1000." (36, 9).
    assert!(
        (gap.kept_original.sum_logprob - (-0.1 * 62.0)).abs() < 1e-9,
        "{gap:?}"
    );
    assert_eq!(gap.kept_original.tokens, 18);
    let diff = gap.chosen.mean_logprob - gap.original.mean_logprob;
    assert!((gap.difference - diff).abs() < 1e-12);
}

/// A generator with a small context that counts words and records which prompts it
/// counted in full.
struct Narrow {
    inner: Scripted,
    context: usize,
    full_counts: std::cell::Cell<usize>,
}

impl Generator for Narrow {
    fn generate_each(
        &mut self,
        reqs: &[GenerationRequest],
        p: &SamplingParams,
        done: &mut dyn FnMut(usize, &Completion),
    ) -> sdft_core::Result<Vec<Completion>> {
        let c = self.context;
        for r in reqs {
            let n = self.inner.count_tokens(&r.prompt).unwrap();
            assert!(n + p.max_new_tokens <= c, "{} sent with {n} tokens", r.id);
        }
        self.inner.generate_each(reqs, p, done)
    }

    fn count_tokens(&self, prompt: &Prompt) -> Option<usize> {
        self.full_counts.set(self.full_counts.get() + 1);
        self.inner.count_tokens(prompt)
    }

    fn context_length(&self) -> Option<usize> {
        Some(self.context)
    }

    fn count_tokens_capped(&self, prompt: &Prompt, cap: usize) -> Option<usize> {
        let words = prompt.display_with("<s>", "</s>");
        Some(words.split_whitespace().take(cap + 1).count())
    }
}

#[test]
fn a_row_too_long_for_the_context_falls_back_as_too_long() {
    let (mut data, g) = gsm8k_rows();
    data.push(Example::new("apples ".repeat(5000), "The answer is 1.").with_id("huge"));
    let mut g = Narrow {
        inner: g,
        context: 400,
        full_counts: Default::default(),
    };
    let config = DistillConfig::builder(Task::Gsm8k)
        .sampling(SamplingParams {
            max_new_tokens: 64,
            ..SamplingParams::greedy()
        })
        .build()
        .unwrap();
    let d = Distiller::new(config);
    let mut rows: Vec<DistilledRow> = Vec::new();
    let stats = d.run(&mut g, &data, &mut rows, &mut |_| {}).unwrap();
    assert_eq!((stats.rows, stats.generated), (6, 5));
    assert_eq!(g.full_counts.get(), 0, "counted with the cap only");
    let huge = rows.iter().find(|r| r.id == "huge").unwrap();
    assert_eq!(huge.reason.as_deref(), Some(sdft_distill::TOO_LONG));
    assert!(!huge.kept && huge.distilled.is_none());
    assert_eq!(huge.response, "The answer is 1.");
    assert!(huge.prompt_tokens.is_none() && huge.completion_tokens.is_none());
    let s = Summary::from_rows("out.parquet".as_ref(), &rows, Manifest::default());
    assert_eq!(s.fallback_by_reason["too_long"], 1);
    assert!(g.inner.seen.iter().all(|(id, _)| id != "huge"));
}
