//! The trained arms of an experiment: `[[arm]]` tables, each a LoRA run on the
//! task with its own objective, data and recipe, evaluated and compared with the
//! seed and with a baseline arm.
//!
//! ```toml
//! baseline = "vanilla"            # the arm every other arm is compared with
//!
//! [[arm]]
//! name = "vanilla"                # stages train-vanilla, eval-vanilla
//! objective = "sft"               # cross-entropy ...
//! data = "original"               # ... on the dataset's own answers
//!
//! [[arm]]
//! name = "sdft"
//! objective = "sft"
//! data = "distilled"              # ... on the seed's rewrites (Yang et al. 2024)
//!
//! [[arm]]
//! name = "vanilla-r64"
//! objective = "sft"
//! data = "original"
//! lora_rank = 64                  # any other key: an `sdft train` flag for this
//! lora_alpha = 128                # arm, over the experiment's [train] table
//! lora_targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
//!
//! [[arm]]
//! name = "on-policy"
//! objective = "on-policy"         # on-policy self-distillation (Shenfeld et al.
//! rollouts_every = 0              # 2026): the student's own samples, scored by the
//!                                 # seed shown the demonstration
//! ```
//!
//! Without `[[arm]]` tables an experiment has today's two arms: `vanilla` (`sft`
//! on the original answers) and `sdft` (`sft` on the distilled ones), and
//! `vanilla` is the baseline.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How an arm is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArmObjective {
    /// Cross-entropy on fixed answers (`sdft train --objective sft`).
    #[default]
    Sft,
    /// On-policy self-distillation (`sdft train --objective on-policy`).
    OnPolicy,
}

impl ArmObjective {
    pub fn as_str(self) -> &'static str {
        match self {
            ArmObjective::Sft => "sft",
            ArmObjective::OnPolicy => "on-policy",
        }
    }
}

/// Which answers an `sft` arm is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArmData {
    /// The dataset's reference answers (vanilla fine-tuning).
    Original,
    /// The seed's rewrites from the `distill` stage (SDFT, Yang et al. 2024).
    Distilled,
}

/// One `[[arm]]` table (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// The arm's name: its stages are `train-NAME` and `eval-NAME`.
    pub name: String,
    #[serde(default)]
    pub objective: ArmObjective,
    /// Required for `sft`; `on-policy` reads the original answers (the teacher's
    /// demonstrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ArmData>,
    /// Every other key: an `sdft train` flag for this arm, over `[train]`.
    #[serde(flatten)]
    pub train: toml::Table,
}

impl Arm {
    pub fn new(name: &str, objective: ArmObjective, data: Option<ArmData>) -> Arm {
        Arm {
            name: name.into(),
            objective,
            data,
            train: toml::Table::new(),
        }
    }

    /// Whether the arm trains on the distilled answers (needs the `distill` stage).
    pub fn uses_distilled(&self) -> bool {
        self.data == Some(ArmData::Distilled)
    }

    /// What the arm is, in a few words (the report's and the plan's label).
    pub fn describe(&self) -> String {
        match (self.objective, self.data) {
            (ArmObjective::Sft, Some(ArmData::Distilled)) => {
                "SFT on the distilled answers (SDFT, Yang et al. 2024)".into()
            }
            (ArmObjective::Sft, _) => "SFT on the original answers".into(),
            (ArmObjective::OnPolicy, _) => {
                "on-policy self-distillation (Shenfeld et al. 2026)".into()
            }
        }
    }
}

/// Today's arms: `vanilla` and `sdft`.
pub fn default_arms() -> Vec<Arm> {
    vec![
        Arm::new("vanilla", ArmObjective::Sft, Some(ArmData::Original)),
        Arm::new("sdft", ArmObjective::Sft, Some(ArmData::Distilled)),
    ]
}

/// The arms' names, comma-separated (for messages).
pub fn names(arms: &[Arm]) -> String {
    arms.iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The baseline arm's name: `baseline` if given, else `vanilla` if there is such
/// an arm, else the first arm's.
pub fn baseline_name(arms: &[Arm], baseline: Option<&str>) -> String {
    match baseline {
        Some(b) => b.to_string(),
        None if arms.iter().any(|a| a.name == "vanilla") => "vanilla".into(),
        None => arms.first().map(|a| a.name.clone()).unwrap_or_default(),
    }
}

/// Keys an arm cannot set: the pipeline sets them from the arm's kind.
const RESERVED: [&str; 8] = [
    "model",
    "output",
    "data",
    "input",
    "adapter",
    "response_column",
    "resume",
    "template",
];

/// Checks the arms of the config at `path` and the baseline's name, which must
/// be one of them (default: `vanilla` if there is such an arm, else the first).
/// Returns the baseline's name.
pub fn check(path: &Path, arms: &[Arm], baseline: Option<&str>) -> Result<String> {
    if arms.is_empty() {
        return Err(Error::config(
            path,
            "no arms: add at least one [[arm]] table",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, a) in arms.iter().enumerate() {
        let at = format!("[[arm]] {} (`{}`)", i + 1, a.name);
        let ok = !a.name.is_empty()
            && a.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok || a.name == "seed" {
            return Err(Error::config(
                path,
                format!(
                    "{at}: a name is letters, digits, '-' and '_', and not `seed` (it names \
                     the stages train-NAME and eval-NAME)"
                ),
            ));
        }
        if !seen.insert(a.name.as_str()) {
            return Err(Error::config(
                path,
                format!("{at}: a second arm of this name"),
            ));
        }
        match (a.objective, a.data) {
            (ArmObjective::Sft, None) => {
                return Err(Error::config(
                    path,
                    format!("{at}: an `sft` arm needs `data = \"original\"` or `\"distilled\"`"),
                ))
            }
            (ArmObjective::OnPolicy, Some(ArmData::Distilled)) => {
                return Err(Error::config(
                    path,
                    format!(
                        "{at}: an `on-policy` arm samples its own answers and shows the teacher \
                         the original ones; remove `data = \"distilled\"`"
                    ),
                ))
            }
            _ => {}
        }
        for k in a.train.keys() {
            let key = k.replace('-', "_");
            if RESERVED.contains(&key.as_str()) || key == "objective" {
                return Err(Error::config(
                    path,
                    format!("{at}: `{k}` is set by the pipeline from the arm's kind; remove it"),
                ));
            }
        }
    }
    let name = baseline_name(arms, baseline);
    if !seen.contains(name.as_str()) {
        return Err(Error::config(
            path,
            format!(
                "baseline = {name:?} names no arm (the arms: {})",
                names(arms)
            ),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arms(text: &str) -> Vec<Arm> {
        #[derive(Deserialize)]
        struct W {
            arm: Vec<Arm>,
        }
        toml::from_str::<W>(text).unwrap().arm
    }

    #[test]
    fn arms_parse_with_their_train_keys() {
        let a = arms(
            "[[arm]]\nname = \"v64\"\nobjective = \"sft\"\ndata = \"original\"\nlora_rank = 64\n\
             [[arm]]\nname = \"op\"\nobjective = \"on-policy\"\nrollouts_every = 0\n",
        );
        assert_eq!(a[0].train.get("lora_rank").unwrap().as_integer(), Some(64));
        assert_eq!(a[1].objective, ArmObjective::OnPolicy);
        assert_eq!(a[1].data, None);
        assert_eq!(check(Path::new("x.toml"), &a, None).unwrap(), "v64");
        assert_eq!(
            check(Path::new("x.toml"), &default_arms(), None).unwrap(),
            "vanilla"
        );
    }

    #[test]
    fn bad_arms_are_named() {
        let p = Path::new("exp.toml");
        let err = |text: &str, baseline: Option<&str>| {
            check(p, &arms(text), baseline).unwrap_err().to_string()
        };
        let e = err("[[arm]]\nname = \"a\"\nobjective = \"sft\"\n", None);
        assert!(
            e.contains("exp.toml") && e.contains("`a`") && e.contains("needs `data"),
            "{e}"
        );
        let e = err("[[arm]]\nname = \"seed\"\ndata = \"original\"\n", None);
        assert!(e.contains("not `seed`"), "{e}");
        let e = err(
            "[[arm]]\nname = \"a\"\ndata = \"original\"\n[[arm]]\nname = \"a\"\ndata = \"distilled\"\n",
            None,
        );
        assert!(e.contains("second arm"), "{e}");
        let e = err(
            "[[arm]]\nname = \"a\"\nobjective = \"on-policy\"\ndata = \"distilled\"\n",
            None,
        );
        assert!(e.contains("remove `data"), "{e}");
        let e = err(
            "[[arm]]\nname = \"a\"\ndata = \"original\"\ntemplate = \"x\"\n",
            None,
        );
        assert!(e.contains("`template` is set by the pipeline"), "{e}");
        let e = err("[[arm]]\nname = \"a\"\ndata = \"original\"\n", Some("b"));
        assert!(
            e.contains("baseline = \"b\" names no arm (the arms: a)"),
            "{e}"
        );
    }
}
