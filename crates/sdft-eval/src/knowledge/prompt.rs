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
use sdft_data::ChatFormat;

use super::data::{Fewshot, Split};
use super::tasks::{mmlu_description, Doc, Task};

/// How a context becomes the prompt the continuation is scored after.
#[derive(Debug, Clone, Copy, Default)]
pub enum PromptFormat<'a> {
    /// lm-eval's raw text, as the paper ran these benchmarks.
    #[default]
    Paper,
    /// lm-eval's `--apply_chat_template`: the description (MMLU's subject line) as
    /// the system message, examples and question as one user message, the
    /// assistant turn opened; continuations lose their target delimiter
    /// (`lm_eval/api/task.py` `fewshot_context`, `append_target_question`,
    /// `construct_requests`).
    Chat(&'a ChatFormat),
}

impl<'a> PromptFormat<'a> {
    /// The format `opts` asks for: `chat` needs the model's chat template.
    pub fn from_options(
        format: sdft_data::PromptFormat,
        chat: Option<&'a ChatFormat>,
    ) -> std::result::Result<Self, String> {
        match (format, chat) {
            (sdft_data::PromptFormat::Paper, _) => Ok(PromptFormat::Paper),
            (sdft_data::PromptFormat::Chat, Some(c)) => Ok(PromptFormat::Chat(c)),
            (sdft_data::PromptFormat::Chat, None) => Err(
                "--prompt-format chat needs a chat template, and the model has none".to_string(),
            ),
        }
    }

    /// The name recorded in results (`prompt_format`).
    pub fn name(self) -> &'static str {
        self.recorded().as_str()
    }

    /// The workspace's prompt format this corresponds to, as results record it.
    pub fn recorded(self) -> sdft_data::PromptFormat {
        match self {
            PromptFormat::Paper => sdft_data::PromptFormat::Paper,
            PromptFormat::Chat(_) => sdft_data::PromptFormat::Chat,
        }
    }

    /// What the prompt depends on beyond lm-eval's task definition: empty for
    /// `paper`, the chat template's Jinja source for `chat`.
    pub fn template_source(self) -> &'a str {
        match self {
            PromptFormat::Paper => "",
            PromptFormat::Chat(c) => c.source(),
        }
    }

    /// The prompt for a context made of `description` (possibly empty) and `body`
    /// (examples and the document's own context).
    pub fn wrap(self, description: &str, body: &str) -> sdft_data::Result<Prompt> {
        match self {
            PromptFormat::Paper => Ok(Prompt::raw(format!("{description}{body}"))),
            PromptFormat::Chat(chat) => {
                let mut msgs = Vec::with_capacity(2);
                if !description.is_empty() {
                    msgs.push(("system".to_string(), description.to_string()));
                }
                msgs.push(("user".to_string(), body.to_string()));
                Ok(Prompt::raw(chat.render(&msgs, true)?))
            }
        }
    }

    /// The scored continuation: as lm-eval builds it (target delimiter included),
    /// without the delimiter under `chat`.
    pub fn continuation(self, continuation: &str) -> String {
        match self {
            PromptFormat::Paper => continuation.to_string(),
            PromptFormat::Chat(_) => continuation
                .strip_prefix(TARGET_DELIMITER)
                .unwrap_or(continuation)
                .to_string(),
        }
    }
}

/// The target delimiter of every task here (lm-eval's default).
pub const TARGET_DELIMITER: &str = " ";

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

/// The description of `doc`'s context: MMLU's subject line, empty elsewhere.
pub fn description(task: Task, doc: &Doc) -> String {
    match (task, &doc.subject) {
        (Task::Mmlu, Some(subject)) => mmlu_description(subject),
        _ => String::new(),
    }
}

/// The context of choice `choice` of `doc` after the description: the examples,
/// then the document's own context.
pub fn body(doc: &Doc, choice: usize, examples: &[&Doc]) -> String {
    let mut s = String::new();
    for ex in examples {
        s.push_str(&ex.example());
        s.push_str(FEWSHOT_DELIMITER);
    }
    s.push_str(doc.context(choice));
    s
}

/// The full raw context of choice `choice` of `doc` (`paper`): description,
/// examples, then the document's own context.
pub fn full_context(task: Task, doc: &Doc, choice: usize, examples: &[&Doc]) -> String {
    format!("{}{}", description(task, doc), body(doc, choice, examples))
}
