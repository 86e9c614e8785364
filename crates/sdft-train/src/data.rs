//! Training data: examples read by `sdft-data`, rendered with a template,
//! tokenized piecewise and truncated per turn as LLaMA-Factory does, then laid out
//! in micro-batches and optimizer steps in a seeded order.

use std::path::Path;

use sdft_core::rng::SplitMix64;
use sdft_core::{Example, Prompt};
use sdft_data::{ColumnMap, Dataset, Field, ReadOptions, Template};

use crate::truncate::truncate_pair;
use crate::{Error, Result};

/// One tokenized training example: token ids and, per token, whether it is a
/// target (response or EOS) rather than prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub target: Vec<bool>,
}

impl Sequence {
    /// Number of supervised tokens (positions with a loss).
    pub fn n_targets(&self) -> usize {
        self.target.iter().skip(1).filter(|t| **t).count()
    }
}

/// Which column holds the training target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseColumn {
    /// The distillation output's `response` column (mapped onto the output).
    Response,
    /// The dataset's own output column (detected: output, answer, response, ...).
    Output,
}

impl ResponseColumn {
    /// `response` or `output` (the serde names; see [`crate::names`]).
    pub fn parse(s: &str) -> Result<Self> {
        crate::names::parse(s)
    }
}

crate::names::named_value!(ResponseColumn, "response_column");

/// Reads the examples of `path` (any format `sdft-data` reads), the target taken
/// from `column`; errors when none is left.
pub fn read_examples(
    path: &Path,
    column: ResponseColumn,
    limit: Option<usize>,
) -> Result<Vec<Example>> {
    let columns = match column {
        ResponseColumn::Response => ColumnMap::new().with("response", Field::Output),
        ResponseColumn::Output => ColumnMap::new(),
    };
    let data = Dataset::read(path, &ReadOptions::new().columns(columns))?;
    if !data.report.dropped.is_empty() {
        tracing::warn!(
            file = %path.display(),
            dropped = data.report.dropped.len(),
            "rows failed the schema check and were skipped"
        );
    }
    let mut examples = data.examples;
    if let Some(n) = limit {
        examples.truncate(n);
    }
    if examples.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            message: "`data`: the dataset has no usable examples".into(),
        });
    }
    Ok(examples)
}

/// Checks that a template can render training targets.
pub fn check_template(t: &Template) -> Result<()> {
    if !t.response.contains("{response}") {
        return Err(Error::config(
            "template",
            "a template whose `response` holds the {response} slot",
            format!("{} with response {:?}", t.name, t.response),
        ));
    }
    if t.uses_reference() {
        return Err(Error::config(
            "template",
            "a task template (this one is a distillation template with {resp})",
            &t.name,
        ));
    }
    t.validate()?;
    Ok(())
}

/// Checks that a template can be an on-policy teacher's: a prompt that shows
/// the demonstration (`{resp}`).
pub fn check_teacher_template(t: &Template) -> Result<()> {
    if !t.uses_reference() {
        return Err(Error::config(
            "teacher_template",
            "a distillation template whose prompt shows the reference answer ({resp})",
            &t.name,
        ));
    }
    t.validate()?;
    Ok(())
}

/// Renders and tokenizes one example: every turn's prompt masked and every
/// assistant turn (plus EOS) supervised. In the `chat` prompt format the ids are
/// the whole conversation's tokenization and each target is supervised up to and
/// including the chat template's end-of-turn token. Each turn is cut to the budget left of
/// `cutoff` with [`truncate_pair`]; turns past the budget are dropped.
/// The ids the loss is taken on for `ex` under `template` (its last turn's
/// response and EOS), as training encodes it (no cutoff).
pub fn target_ids(
    template: &Template,
    ex: &Example,
    encode: &dyn Fn(&Prompt) -> sdft_model::Result<Vec<u32>>,
) -> Result<Vec<u32>> {
    let seq = encode_example(template, ex, 1 << 24, encode)?;
    Ok(seq
        .ids
        .iter()
        .zip(&seq.target)
        .filter(|(_, t)| **t)
        .map(|(i, _)| *i)
        .collect())
}

pub fn encode_example(
    template: &Template,
    ex: &Example,
    cutoff: usize,
    encode: &dyn Fn(&Prompt) -> sdft_model::Result<Vec<u32>>,
) -> Result<Sequence> {
    let mut seq = Sequence {
        ids: Vec::new(),
        target: Vec::new(),
    };
    let turns = template.render_turns(ex)?;
    let spans = match &template.chat {
        Some(chat) => chat_spans(template, chat, ex, &turns, encode)?,
        None => turns
            .iter()
            .map(|t| Ok((encode(&t.prompt)?, encode(&t.response)?, None)))
            .collect::<Result<Vec<_>>>()?,
    };
    for (source, target, supervised) in spans {
        let total = seq.ids.len();
        if total >= cutoff {
            break;
        }
        let (source, mut target) = truncate_pair(&source, &target, cutoff - total);
        let supervised = supervised.unwrap_or(target.len()).min(target.len());
        seq.target.extend(std::iter::repeat_n(false, source.len()));
        seq.target.extend(std::iter::repeat_n(true, supervised));
        seq.target
            .extend(std::iter::repeat_n(false, target.len() - supervised));
        seq.ids.extend(source);
        seq.ids.append(&mut target);
    }
    seq.ids.truncate(cutoff);
    seq.target.truncate(cutoff);
    Ok(seq)
}

/// One turn's prompt ids, target ids, and how many target ids are supervised
/// (`None`: all).
type TurnSpan = (Vec<u32>, Vec<u32>, Option<usize>);

/// The `chat` format's token spans: per turn the prompt ids, the target ids, and
/// how many target ids are supervised (through the end-of-turn token; ChatML's
/// newline after `<|im_end|>` is in the sequence but not supervised). The ids are
/// the tokenization of the whole conversation text, as the chat template renders
/// it, split where each turn's prompt and target end. Where a tokenizer merges
/// text across such a boundary (so no split is exact), that part is tokenized on
/// its own instead, as a prompt is for generation, with a warning naming the row.
fn chat_spans(
    template: &Template,
    chat: &sdft_data::ChatFormat,
    ex: &Example,
    turns: &[sdft_data::RenderedTurn],
    encode: &dyn Fn(&Prompt) -> sdft_model::Result<Vec<u32>>,
) -> Result<Vec<TurnSpan>> {
    let eot = encode(&Prompt::raw(chat.end_of_turn()))?;
    let eot = (eot.len() == 1).then(|| eot[0]);
    let mut text = String::new();
    let mut before: Vec<u32> = Vec::new();
    let mut out = Vec::new();
    for (i, t) in turns.iter().enumerate() {
        let mut cut = |part: &Prompt, what: &str| -> Result<Vec<u32>> {
            text.push_str(&part.text());
            let ids = encode(&Prompt::raw(text.clone()))?;
            let span = if ids.starts_with(&before) {
                ids[before.len()..].to_vec()
            } else {
                tracing::warn!(
                    template = %template.name,
                    id = %ex.id,
                    turn = i + 1,
                    part = what,
                    "the tokenizer merges this part with the text before it; tokenized on its own"
                );
                encode(part)?
            };
            before.extend_from_slice(&span);
            Ok(span)
        };
        let source = cut(&t.prompt, "prompt")?;
        let target = cut(&t.response, "target")?;
        let supervised = eot.and_then(|e| target.iter().rposition(|id| *id == e).map(|p| p + 1));
        out.push((source, target, supervised));
    }
    Ok(out)
}

/// The order of examples in micro-batches for one epoch: a seeded shuffle, and with
/// `group_by_length`, HF's grouping (megabatches of 50 micro-batches sorted by
/// length, longest first).
pub fn epoch_order(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: usize,
    group: bool,
) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..lengths.len()).collect();
    let mut rng = SplitMix64::new(seed ^ (epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.shuffle(&mut idx);
    if group {
        for mega in idx.chunks_mut(batch_size * 50) {
            mega.sort_by(|a, b| lengths[*b].cmp(&lengths[*a]));
        }
    }
    idx.chunks(batch_size).map(|c| c.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdft_core::PromptPiece;

    fn fake_encode(p: &Prompt) -> sdft_model::Result<Vec<u32>> {
        Ok(p.pieces
            .iter()
            .flat_map(|piece| match piece {
                PromptPiece::Bos => vec![1],
                PromptPiece::Eos => vec![2],
                PromptPiece::Text(t) => t.split_whitespace().map(|w| w.len() as u32 + 10).collect(),
            })
            .collect())
    }

    #[test]
    fn every_assistant_turn_is_supervised_and_prompts_masked() {
        let t = Template::preset("alpaca").unwrap();
        let mut ex = Example::new("last question", "final answer here");
        ex.history = vec![sdft_core::Turn::new("first q", "first a")];
        let seq = encode_example(&t, &ex, 1024, &fake_encode).unwrap();
        let turns = t.render_turns(&ex).unwrap();
        let mut expect = Vec::new();
        for turn in &turns {
            expect.extend(std::iter::repeat_n(
                false,
                fake_encode(&turn.prompt).unwrap().len(),
            ));
            expect.extend(std::iter::repeat_n(
                true,
                fake_encode(&turn.response).unwrap().len(),
            ));
        }
        assert_eq!(seq.target, expect);
        // Two supervised spans, each ending in EOS.
        let eos: Vec<usize> = seq
            .ids
            .iter()
            .enumerate()
            .filter(|(_, i)| **i == 2)
            .map(|(p, _)| p)
            .collect();
        assert_eq!(eos.len(), 2);
        assert!(eos.iter().all(|p| seq.target[*p]));
    }

    #[test]
    fn truncation_splits_the_budget() {
        let t = Template::preset("alpaca").unwrap();
        let long = vec!["word"; 300].join(" ");
        let ex = Example::new(long.clone(), long);
        let seq = encode_example(&t, &ex, 64, &fake_encode).unwrap();
        assert_eq!(seq.ids.len(), 64);
        let n_target = seq.target.iter().filter(|t| **t).count();
        assert!(n_target > 20 && n_target < 40, "{n_target}");
    }

    #[test]
    fn response_column_picks_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("distilled.jsonl");
        let row = r#"{"id": "a", "instruction": "q", "output": "orig", "original": "orig", "distilled": "new", "response": "new"}"#;
        std::fs::write(&p, format!("{row}\n")).unwrap();
        let ex = read_examples(&p, ResponseColumn::Response, None).unwrap();
        assert_eq!(ex[0].output, "new");
        let ex = read_examples(&p, ResponseColumn::Output, None).unwrap();
        assert_eq!(ex[0].output, "orig");
        let e = ResponseColumn::parse("answer").unwrap_err().to_string();
        assert!(e.contains("response_column"), "{e}");
    }

    #[test]
    fn epoch_order_is_seeded_and_covers_all() {
        let lens = vec![5, 9, 1, 7, 3];
        let a = epoch_order(&lens, 2, 42, 0, false);
        assert_eq!(a, epoch_order(&lens, 2, 42, 0, false));
        assert_ne!(a, epoch_order(&lens, 2, 42, 1, false));
        let mut all: Vec<usize> = a.concat();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
        let g = epoch_order(&lens, 2, 42, 0, true).concat();
        assert!(g.windows(2).all(|w| lens[w[0]] >= lens[w[1]]));
    }
}
