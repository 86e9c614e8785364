//! [`Task`]: the paper's pairing of distillation template, training template and
//! checks for each dataset (`docs/distill.md`, "Tasks: template and checks").

use sdft_core::Example;

use crate::checks::{BanPhrases, Check, CodeStyle, FunctionCall, MathAnswer, Rejection};
use crate::{Error, Result};

/// A dataset family of the paper, or `Custom` (ban-phrase check only; users add
/// their own checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    Gsm8k,
    MultiArith,
    OpenFunctions,
    MagiCoder,
    Alpaca,
    Dolly,
    Lima,
    Custom,
}

const TASK_NAMES: &str = "gsm8k, multiarith, openfunctions, magicoder, alpaca, dolly, lima, custom";

impl Task {
    pub const ALL: [Task; 8] = [
        Task::Gsm8k,
        Task::MultiArith,
        Task::OpenFunctions,
        Task::MagiCoder,
        Task::Alpaca,
        Task::Dolly,
        Task::Lima,
        Task::Custom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Task::Gsm8k => "gsm8k",
            Task::MultiArith => "multiarith",
            Task::OpenFunctions => "openfunctions",
            Task::MagiCoder => "magicoder",
            Task::Alpaca => "alpaca",
            Task::Dolly => "dolly",
            Task::Lima => "lima",
            Task::Custom => "custom",
        }
    }

    pub fn parse(name: &str) -> Result<Task> {
        let n = name.to_ascii_lowercase();
        Task::ALL
            .into_iter()
            .find(|t| t.name() == n || (n == "openfunction" && *t == Task::OpenFunctions))
            .ok_or(Error::UnknownTask {
                name: name.to_string(),
                expected: TASK_NAMES,
            })
    }

    /// The distillation (rewriting) template preset.
    pub fn distill_template(self) -> &'static str {
        match self {
            Task::Gsm8k | Task::MultiArith => "gsm8k_distill",
            Task::OpenFunctions | Task::MagiCoder => "alpaca_distill_refer",
            Task::Alpaca | Task::Dolly | Task::Lima | Task::Custom => "alpaca_distill_using",
        }
    }

    /// The training template preset.
    pub fn train_template(self) -> &'static str {
        match self {
            Task::Gsm8k | Task::MultiArith => "gsm8k",
            _ => "alpaca",
        }
    }

    /// The paper's number of training epochs for this dataset.
    pub fn paper_epochs(self) -> usize {
        match self {
            Task::Gsm8k | Task::MultiArith | Task::OpenFunctions => 5,
            _ => 2,
        }
    }

    /// The checks a rewrite must pass, in order: the ban-phrase check, then the
    /// task's own.
    pub fn checks(self) -> Vec<Box<dyn Check>> {
        let mut v: Vec<Box<dyn Check>> = vec![Box::new(BanPhrases)];
        match self {
            Task::Gsm8k | Task::MultiArith => v.push(Box::new(MathAnswer)),
            Task::OpenFunctions => v.push(Box::new(FunctionCall)),
            Task::MagiCoder => v.push(Box::new(CodeStyle)),
            Task::Alpaca | Task::Dolly | Task::Lima | Task::Custom => {}
        }
        v
    }

    /// Runs this task's checks on a rewrite (stripped first, as the paper does):
    /// `Ok` keeps the rewrite, `Err` names the first failed check.
    pub fn verdict(self, example: &Example, rewrite: &str) -> std::result::Result<(), Rejection> {
        run_checks(&self.checks(), example, rewrite)
    }
}

/// Runs checks in order on a stripped rewrite; the first failure is the verdict.
pub(crate) fn run_checks(
    checks: &[Box<dyn Check>],
    example: &Example,
    rewrite: &str,
) -> std::result::Result<(), Rejection> {
    let rewrite = crate::checks::py_strip(rewrite);
    for c in checks {
        c.check(example, rewrite).map_err(|detail| Rejection {
            check: c.name().to_string(),
            detail,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairings_follow_the_paper() {
        assert_eq!(
            Task::parse("GSM8K").unwrap().distill_template(),
            "gsm8k_distill"
        );
        assert_eq!(
            Task::OpenFunctions.distill_template(),
            "alpaca_distill_refer"
        );
        assert_eq!(Task::Lima.distill_template(), "alpaca_distill_using");
        assert_eq!(Task::Dolly.train_template(), "alpaca");
        assert_eq!(Task::OpenFunctions.paper_epochs(), 5);
        assert_eq!(Task::Alpaca.paper_epochs(), 2);
        assert!(Task::parse("nope").is_err());
        // Ban phrases apply before the task's own check.
        let ex = Example::new("q", "The answer is 7.");
        let r = Task::Gsm8k
            .verdict(&ex, "Your turn! The answer is 7.")
            .unwrap_err();
        assert_eq!(r.check, "ban_phrase");
        assert!(Task::Alpaca.verdict(&ex, "  anything at all  ").is_ok());
    }
}
