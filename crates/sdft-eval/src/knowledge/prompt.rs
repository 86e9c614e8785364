//! Contexts with lm-eval's description and few-shot examples, and the prompt
//! format they are scored under.
//!
//! lm-eval builds a context as `description + examples + doc_to_text(doc)`,
//! where each example is `doc_to_text(ex) + target_delimiter + gold choice` and
//! examples are joined and followed by the few-shot delimiter `"\n\n"`
//! (`lm_eval/api/task.py` `fewshot_context`, `lm_eval/api/samplers.py`
//! `get_context`). MMLU's description is its subject line; the other tasks have
//! none.

use sdft_core::rng::{fnv1a64, SplitMix64};
use sdft_core::Prompt;

use super::data::{Fewshot, Split};
use super::tasks::{mmlu_description, Doc, Task};

/// How a context becomes the prompt the continuation is scored after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptFormat {
    /// lm-eval's raw text, as the paper ran these benchmarks.
    #[default]
    Paper,
}

impl PromptFormat {
    /// The name recorded in results (`prompt_format`).
    pub fn name(self) -> &'static str {
        match self {
            PromptFormat::Paper => "paper",
        }
    }

    /// The workspace's prompt format this corresponds to, as results record it.
    pub fn recorded(self) -> sdft_data::PromptFormat {
        match self {
            PromptFormat::Paper => sdft_data::PromptFormat::Paper,
        }
    }

    /// The prompt for a context. Another format (a chat template that puts the
    /// context in a user message and opens the assistant turn) is one more arm
    /// here: everything else sees only `Prompt`s.
    pub fn wrap(self, context: &str) -> Prompt {
        match self {
            PromptFormat::Paper => Prompt::raw(context.to_string()),
        }
    }
}

/// The few-shot delimiter of every task here.
pub const FEWSHOT_DELIMITER: &str = "\n\n";

/// The few-shot stream of one document: FNV-1a over `task/subject/doc` mixed into
/// the seed.
fn stream(seed: u64, task: Task, subject: Option<&str>, doc: usize) -> SplitMix64 {
    let key = format!("{}/{}/{doc}", task.name(), subject.unwrap_or(""));
    SplitMix64::new(seed ^ fnv1a64(key.as_bytes()))
}

/// `k` distinct indices below `n`, none equal to `skip`, in drawn order.
fn draw(rng: &mut SplitMix64, n: usize, k: usize, skip: Option<usize>) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..n).filter(|i| Some(*i) != skip).collect();
    let k = k.min(pool.len());
    for i in 0..k {
        let j = i + (rng.next_u64() % (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

/// The few-shot examples for document `index` of `split`: MMLU's first `k` dev
/// documents, or `k` drawn with `seed` (from the validation split, or from the
/// evaluated split without the document itself). Each draw depends only on the
/// seed, the task and the document, so `--limit` does not change it.
pub fn examples(task: Task, split: &Split, index: usize, k: usize, seed: u64) -> Vec<&Doc> {
    if k == 0 {
        return Vec::new();
    }
    let mut rng = stream(seed, task, split.subject.as_deref(), index);
    match &split.fewshot {
        Fewshot::FirstN(pool) => pool.iter().take(k).collect(),
        Fewshot::Drawn(pool) => draw(&mut rng, pool.len(), k, None)
            .into_iter()
            .map(|i| &pool[i])
            .collect(),
        Fewshot::SameSplit => draw(&mut rng, split.docs.len(), k, Some(index))
            .into_iter()
            .map(|i| &split.docs[i])
            .collect(),
    }
}

/// The full context of choice `choice` of `doc`: description, examples, then
/// the document's own context.
pub fn full_context(task: Task, doc: &Doc, choice: usize, examples: &[&Doc]) -> String {
    let mut s = match (task, &doc.subject) {
        (Task::Mmlu, Some(subject)) => mmlu_description(subject),
        _ => String::new(),
    };
    for ex in examples {
        s.push_str(&ex.example());
        s.push_str(FEWSHOT_DELIMITER);
    }
    s.push_str(doc.context(choice));
    s
}
