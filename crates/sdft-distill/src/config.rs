//! [`DistillConfig`] and its builder; custom tasks from TOML ([`TaskFile`]).

use std::path::Path;

use sdft_core::SamplingParams;
use sdft_data::Template;
use serde::Deserialize;

use crate::checks::{builtin_check, Check, LengthCheck, RegexCheck, BUILTIN_CHECKS};
use crate::{Error, Result, Task};

/// What to do with a row whose instruction or reference output is empty: there is
/// nothing to rewrite. Either way the row is reported by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyPolicy {
    /// Keep the row with its original response (`kept = false`, reason
    /// `empty_instruction` / `empty_output`), so the dataset size never changes.
    #[default]
    Keep,
    /// Leave the row out of the output (listed in the summary's `skipped`).
    Skip,
}

impl EmptyPolicy {
    /// The policy's name as configs and manifests spell it (`keep`, `skip`).
    pub fn name(self) -> &'static str {
        match self {
            EmptyPolicy::Keep => "keep",
            EmptyPolicy::Skip => "skip",
        }
    }

    pub fn parse(s: &str) -> Result<EmptyPolicy> {
        match s {
            "keep" => Ok(EmptyPolicy::Keep),
            "skip" => Ok(EmptyPolicy::Skip),
            other => Err(Error::Config {
                key: "on_empty".into(),
                message: format!("{other:?}: expected keep or skip"),
            }),
        }
    }
}

/// Everything a [`crate::Distiller`] needs: the task, the rewriting template, the
/// checks a rewrite must pass, the sampling parameters, and the empty-row policy.
pub struct DistillConfig {
    pub task: Task,
    pub template: Template,
    pub checks: Vec<Box<dyn Check>>,
    pub sampling: SamplingParams,
    pub on_empty: EmptyPolicy,
    /// Finished rows handed to the sink at a time (each hand-off is one atomic write).
    pub flush_rows: usize,
}

impl std::fmt::Debug for DistillConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistillConfig")
            .field("task", &self.task)
            .field("template", &self.template.name)
            .field("checks", &self.check_names())
            .field("sampling", &self.sampling)
            .field("on_empty", &self.on_empty)
            .field("flush_rows", &self.flush_rows)
            .finish()
    }
}

impl DistillConfig {
    /// A builder starting from the paper's setting for `task`: its distillation
    /// template, its checks, the paper's sampling, empty rows kept.
    pub fn builder(task: Task) -> DistillConfigBuilder {
        DistillConfigBuilder {
            task,
            template: None,
            checks: None,
            sampling: SamplingParams::paper_default(),
            on_empty: EmptyPolicy::Keep,
            flush_rows: 16,
        }
    }

    pub fn check_names(&self) -> Vec<&str> {
        self.checks.iter().map(|c| c.name()).collect()
    }
}

/// Builder of [`DistillConfig`].
pub struct DistillConfigBuilder {
    task: Task,
    template: Option<Template>,
    checks: Option<Vec<Box<dyn Check>>>,
    sampling: SamplingParams,
    on_empty: EmptyPolicy,
    flush_rows: usize,
}

impl DistillConfigBuilder {
    pub fn template(mut self, template: Template) -> Self {
        self.template = Some(template);
        self
    }

    /// Replaces the task's checks (the ban-phrase check is not added implicitly).
    pub fn checks(mut self, checks: Vec<Box<dyn Check>>) -> Self {
        self.checks = Some(checks);
        self
    }

    pub fn sampling(mut self, sampling: SamplingParams) -> Self {
        self.sampling = sampling;
        self
    }

    pub fn on_empty(mut self, policy: EmptyPolicy) -> Self {
        self.on_empty = policy;
        self
    }

    pub fn flush_rows(mut self, n: usize) -> Self {
        self.flush_rows = n.max(1);
        self
    }

    /// Validates the template and builds. The template's stop strings join the
    /// sampling's ([`Template::sampling`]).
    pub fn build(self) -> Result<DistillConfig> {
        let template = match self.template {
            Some(t) => t,
            None => Template::load(self.task.distill_template())?,
        };
        template.validate()?;
        if !template.uses_reference() {
            tracing::warn!(
                template = %template.name,
                "the template has no {{resp}} slot: the model will not see the reference answer"
            );
        }
        // The sampling was validated where it was built (`SamplingBuilder`); the
        // template's stops are checked by `Template::validate` above.
        let sampling = template.sampling(&self.sampling);
        Ok(DistillConfig {
            task: self.task,
            checks: self.checks.unwrap_or_else(|| self.task.checks()),
            template,
            sampling,
            on_empty: self.on_empty,
            flush_rows: self.flush_rows,
        })
    }
}

/// A task described in TOML, for `--task custom` (or to override a paper task):
///
/// ```toml
/// task = "custom"                      # optional
/// template = "alpaca_distill_using"    # a preset name or a template TOML path
/// checks = ["ban_phrase"]              # built-in checks, in order
///
/// [[check]]                            # user checks, run after the built-ins
/// name = "cites_a_number"
/// regex = "\\d"
/// must_match = true                    # default; false rejects a match
///
/// [[check]]
/// name = "not_too_long"
/// max_chars = 4000                     # and/or min_chars
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub task: Option<String>,
    pub template: Option<String>,
    pub checks: Option<Vec<String>>,
    #[serde(default)]
    pub check: Vec<CheckSpec>,
}

/// One `[[check]]` table of a [`TaskFile`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    pub name: String,
    pub regex: Option<String>,
    #[serde(default = "yes")]
    pub must_match: bool,
    pub min_chars: Option<usize>,
    pub max_chars: Option<usize>,
}

fn yes() -> bool {
    true
}

impl TaskFile {
    pub fn load(path: &Path) -> Result<TaskFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|e| match e {
            Error::Config { key, message } => Error::Config {
                key: format!("{}: {key}", path.display()),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<TaskFile> {
        toml::from_str(text).map_err(|e| Error::Config {
            key: "toml".into(),
            message: e.to_string(),
        })
    }

    /// The checks this file lists: built-ins by name (or the task's when `checks`
    /// is absent), then the `[[check]]` tables.
    pub fn build_checks(&self, task: Task) -> Result<Vec<Box<dyn Check>>> {
        let mut out = match &self.checks {
            None => task.checks(),
            Some(names) => names
                .iter()
                .map(|n| {
                    builtin_check(n).ok_or_else(|| Error::Config {
                        key: "checks".into(),
                        message: format!("unknown check {n:?}: expected one of {BUILTIN_CHECKS}"),
                    })
                })
                .collect::<Result<_>>()?,
        };
        for (i, c) in self.check.iter().enumerate() {
            let key = format!("check[{i}] ({})", c.name);
            let check: Box<dyn Check> = match (&c.regex, c.min_chars, c.max_chars) {
                (Some(re), None, None) => Box::new(RegexCheck {
                    name: c.name.clone(),
                    regex: regex::Regex::new(re).map_err(|e| Error::Config {
                        key: format!("{key}.regex"),
                        message: e.to_string(),
                    })?,
                    must_match: c.must_match,
                }),
                (None, min, max) if min.is_some() || max.is_some() => Box::new(LengthCheck {
                    name: c.name.clone(),
                    min_chars: min,
                    max_chars: max,
                }),
                _ => {
                    return Err(Error::Config {
                        key,
                        message: "give either `regex` or `min_chars`/`max_chars`".into(),
                    })
                }
            };
            out.push(check);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_defaults_follow_the_paper() {
        let c = DistillConfig::builder(Task::Gsm8k).build().unwrap();
        assert_eq!(c.template.name, "gsm8k_distill");
        assert_eq!(c.check_names(), ["ban_phrase", "math_answer"]);
        assert_eq!(c.sampling.temperature, 0.95);
        assert_eq!(c.on_empty, EmptyPolicy::Keep);
    }

    #[test]
    fn task_file_checks() {
        let f = TaskFile::parse(
            r#"
            template = "alpaca_distill_refer"
            checks = ["ban_phrase", "function_call"]
            [[check]]
            name = "short"
            max_chars = 10
            [[check]]
            name = "no_code"
            regex = "```"
            must_match = false
            "#,
        )
        .unwrap();
        let checks = f.build_checks(Task::Custom).unwrap();
        let names: Vec<&str> = checks.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["ban_phrase", "function_call", "short", "no_code"]);
        let e = TaskFile::parse("checks = [\"nope\"]")
            .unwrap()
            .build_checks(Task::Custom)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("config `checks`: unknown check \"nope\""),
            "{e}"
        );
        let e = TaskFile::parse("[[check]]\nname = \"x\"")
            .unwrap()
            .build_checks(Task::Custom);
        assert!(e.unwrap_err().to_string().contains("check[0] (x)"));
        assert!(
            TaskFile::parse("tempalte = \"x\"").is_err(),
            "unknown keys are errors"
        );
        // Without `checks`, the task's own apply.
        let f = TaskFile::parse("").unwrap();
        assert_eq!(f.build_checks(Task::Gsm8k).unwrap().len(), 2);
    }
}
