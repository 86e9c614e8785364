//! The experiment TOML of `sdft pipeline --config experiment.toml`.
//!
//! ```toml
//! name = "smollm2-demo"
//! model = "smollm2-135m-instruct"     # a known name, a .gguf file or an HF directory
//! seed = 42
//!
//! [data]
//! file = "gsm8k_train.json"           # in $SDFT_SHARED/data/sdft (or --data-dir), or a path
//! task = "gsm8k"
//! limit = 48
//!
//! [distill]                           # any `sdft distill` flag, by name
//! max_new_tokens = 160
//! measure_gap = true
//!
//! [train]                             # any `sdft train` flag, by name
//! epochs = 1
//! cutoff_len = 256
//!
//! [eval]                              # any `sdft eval run` flag, by name
//! benchmarks = ["gsm8k", "multiarith", "openfunctions", "advbench"]
//! limit = 16
//! ```
//!
//! `[distill]` may set `generator = "openai:http://HOST:PORT/v1"`, `served_model`
//! and `concurrency` to distill on a serving engine (docs/serving.md). So may
//! `[eval]`, for all evaluations at once (one engine, so that they compare):
//! the server then applies each arm's adapter, named per arm in
//! `served_adapters = { vanilla = "vanilla", sdft = "sdft" }` (vLLM/SGLang
//! module names, or llama-server adapter ids), and the seed is evaluated
//! without one (docs/scale-out.md). Drift needs whole next-token
//! distributions, which servers do not return: it is refused there.
//!
//! `[[arm]]` tables list the trained arms, each with its objective, data and
//! LoRA recipe, and `baseline` names the arm the others are compared with
//! ([`crate::arms`]); without them the arms are `vanilla` and `sdft`.
//!
//! A top-level `prompt_format = "paper" | "chat"` is every stage's
//! `--prompt-format` unless the stage's table sets its own.
//!
//! An optional `[plan]` table gives each stage's measured time on a reference
//! machine (`eval-seed = 540.0`, seconds; `measured = "..."` says where and when),
//! which `sdft pipeline` prints as its plan before it starts.
//!
//! Stage tables map onto the stage command's flags: `key = value` becomes
//! `--key value` (underscores as dashes), `true` a bare `--key`, `false` nothing, and
//! an array a comma-separated list.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::arms::{self, Arm};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub model: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Every stage's prompt format unless its table sets `prompt_format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_format: Option<sdft_data::PromptFormat>,
    pub data: DataSection,
    #[serde(default)]
    pub distill: toml::Table,
    #[serde(default)]
    pub train: toml::Table,
    pub eval: toml::Table,
    /// The trained arms (`[[arm]]` tables, [`crate::arms`]); none: `vanilla` and
    /// `sdft`.
    #[serde(default, rename = "arm", skip_serializing_if = "Vec::is_empty")]
    pub arms: Vec<Arm>,
    /// The arm every other arm is compared with (default: `vanilla` if there is
    /// such an arm, else the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Measured stage times for the plan printed before a run (see the module docs).
    #[serde(default, skip_serializing_if = "Plan::is_empty")]
    pub plan: Plan,
}

/// Each stage's measured wall time on a reference machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Where and when the times were measured (machine, date, commit).
    #[serde(default)]
    pub measured: String,
    /// Stage name -> seconds.
    #[serde(default)]
    pub seconds: BTreeMap<String, f64>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.seconds.is_empty() && self.measured.is_empty()
    }
}

fn default_seed() -> u64 {
    42
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// A file name in the data directory, or a path (relative to the config file).
    pub file: String,
    pub task: String,
    pub limit: Option<usize>,
    #[serde(default)]
    pub map: Vec<String>,
}

impl Experiment {
    pub fn load(path: &Path) -> Result<Experiment> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut e: Experiment = toml::from_str(&text)
            .map_err(|e| Error::config(path, format!("invalid experiment: {e}")))?;
        if let Some(f) = e.prompt_format {
            for t in [&mut e.distill, &mut e.train, &mut e.eval] {
                t.entry("prompt_format")
                    .or_insert_with(|| toml::Value::String(f.as_str().into()));
            }
        }
        for k in [
            "generator",
            "served_model",
            "concurrency",
            "served_adapters",
        ] {
            if e.train.contains_key(k) {
                return Err(Error::config(
                    path,
                    format!("`{k}` is a [distill] or [eval] key: training runs in-process"),
                ));
            }
        }
        for k in ["served_adapter", "adapter"] {
            if e.eval.contains_key(k) {
                return Err(Error::config(
                    path,
                    format!(
                        "[eval] `{k}` is set by the pipeline per arm (served: `served_adapters`)"
                    ),
                ));
            }
        }
        if !e.eval.contains_key("benchmarks") {
            return Err(Error::config(path, "[eval] needs `benchmarks`"));
        }
        for (table, t) in [
            ("distill", &e.distill),
            ("train", &e.train),
            ("eval", &e.eval),
        ] {
            for k in ["model", "output", "data", "input", "adapter"] {
                if t.contains_key(k) {
                    return Err(Error::config(
                        path,
                        format!("[{table}] `{k}` is set by the pipeline; remove it"),
                    ));
                }
            }
        }
        arms::check(path, &e.trained_arms(), e.baseline.as_deref())?;
        e.served_adapters(path)?;
        Ok(e)
    }

    /// The arms this experiment trains: its `[[arm]]` tables, or `vanilla` and
    /// `sdft`.
    /// With `[eval] generator`: each trained arm's adapter as the server
    /// serves it (`served_adapters`, checked to name every arm and only arms);
    /// `None` when the evaluations run in-process.
    pub fn served_adapters(&self, path: &Path) -> Result<Option<BTreeMap<String, String>>> {
        let table = self.eval.get("served_adapters");
        if !self.eval.contains_key("generator") {
            return match table {
                Some(_) => Err(Error::config(
                    path,
                    "[eval] `served_adapters` needs `generator` (the server that applies them)",
                )),
                None => Ok(None),
            };
        }
        let benchmarks = self.eval.get("benchmarks").and_then(|b| b.as_array());
        if benchmarks.is_some_and(|b| b.iter().any(|x| x.as_str() == Some("drift"))) {
            return Err(Error::config(
                path,
                "[eval] `drift` needs each model's whole next-token distributions, which a server \
                 does not return: drop it from `benchmarks`, or evaluate in-process",
            ));
        }
        let Some(toml::Value::Table(t)) = table else {
            return Err(Error::config(
                path,
                "[eval] with `generator` needs `served_adapters = { ARM = \"NAME\", ... }`: each \
                 trained arm's adapter as the server serves it (vLLM/SGLang module name, \
                 llama-server adapter id)",
            ));
        };
        let arms = self.trained_arms();
        let mut out = BTreeMap::new();
        for arm in &arms {
            let name = match t.get(&arm.name) {
                Some(toml::Value::String(s)) => s.clone(),
                Some(toml::Value::Integer(i)) if *i >= 0 => i.to_string(),
                Some(other) => {
                    return Err(Error::config(
                        path,
                        format!(
                            "[eval] served_adapters.{}: expected a name or an id, found {other}",
                            arm.name
                        ),
                    ))
                }
                None => {
                    return Err(Error::config(
                        path,
                        format!("[eval] served_adapters: no entry for arm `{}`", arm.name),
                    ))
                }
            };
            out.insert(arm.name.clone(), name);
        }
        if let Some(extra) = t.keys().find(|k| !out.contains_key(*k)) {
            return Err(Error::config(
                path,
                format!(
                    "[eval] served_adapters.{extra}: no such arm (arms: {})",
                    crate::arms::names(&arms)
                ),
            ));
        }
        Ok(Some(out))
    }

    pub fn trained_arms(&self) -> Vec<Arm> {
        if self.arms.is_empty() {
            arms::default_arms()
        } else {
            self.arms.clone()
        }
    }

    /// Keeps only the arms named in `names` (in the config's order), e.g. to leave
    /// out a costly arm; `path` names the config in errors. The baseline must be
    /// among them.
    pub fn select_arms(&mut self, path: &Path, names: &[String]) -> Result<()> {
        let all = self.trained_arms();
        for n in names {
            if !all.iter().any(|a| &a.name == n) {
                return Err(Error::config(
                    path,
                    format!("--arms {n}: no such arm (the arms: {})", arms::names(&all)),
                ));
            }
        }
        self.arms = all
            .into_iter()
            .filter(|a| names.contains(&a.name))
            .collect();
        arms::check(path, &self.arms, self.baseline.as_deref())?;
        Ok(())
    }

    /// The baseline arm's name (checked by [`Experiment::load`]).
    pub fn baseline_arm(&self) -> String {
        arms::baseline_name(&self.trained_arms(), self.baseline.as_deref())
    }

    /// The task data file: a path that exists (relative to the config's folder), or a
    /// file name in `data_dir`.
    pub fn data_path(&self, config_dir: &Path, data_dir: Option<&Path>) -> Result<PathBuf> {
        let direct = config_dir.join(&self.data.file);
        if direct.is_file() {
            return Ok(direct);
        }
        if let Some(d) = data_dir {
            let p = d.join(&self.data.file);
            if p.is_file() {
                return Ok(p);
            }
        }
        Err(Error::Data {
            message: format!(
                "data file {:?} not found next to the config (in {}) or in {}; paths in a config \
                 are relative to its folder; for the paper's data set SDFT_SHARED to the folder \
                 holding data/sdft/, or pass --data-dir DIR",
                self.data.file,
                config_dir.display(),
                data_dir
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "the data directory (none set)".into())
            ),
        })
    }
}

/// A stage table as command-line flags (see the module docs).
pub fn table_flags(table: &toml::Table) -> Result<Vec<OsString>> {
    let sorted: BTreeMap<&String, &toml::Value> = table.iter().collect();
    let mut out = Vec::new();
    for (k, v) in sorted {
        let flag = format!("--{}", k.replace('_', "-"));
        let value = match v {
            toml::Value::Boolean(true) => {
                out.push(flag.into());
                continue;
            }
            toml::Value::Boolean(false) => continue,
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    toml::Value::Float(f) => Ok(f.to_string()),
                    other => Err(Error::Flag {
                        key: k.to_string(),
                        message: format!("unsupported list item {other}"),
                    }),
                })
                .collect::<Result<Vec<_>>>()?
                .join(","),
            other => {
                return Err(Error::Flag {
                    key: k.to_string(),
                    message: format!("unsupported value {other}"),
                })
            }
        };
        out.push(flag.into());
        out.push(value.into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_become_flags() {
        let t: toml::Table = toml::from_str(
            "max_new_tokens = 64\nmeasure_gap = true\nfoo = false\nbenchmarks = [\"gsm8k\", \"mc:x.jsonl\"]\nlearning_rate = 0.0001",
        )
        .unwrap();
        let f: Vec<String> = table_flags(&t)
            .unwrap()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(
            f,
            [
                "--benchmarks",
                "gsm8k,mc:x.jsonl",
                "--learning-rate",
                "0.0001",
                "--max-new-tokens",
                "64",
                "--measure-gap"
            ]
        );
    }

    #[test]
    fn evaluations_on_a_server_name_each_arms_adapter() {
        let dir = tempfile::tempdir().unwrap();
        let load = |extra: &str| {
            let p = dir.path().join("x.toml");
            std::fs::write(
                &p,
                format!("name = \"x\"\nmodel = \"m\"\n[data]\nfile = \"d.json\"\ntask = \"gsm8k\"\n[eval]\nbenchmarks = [\"gsm8k\"]\n{extra}"),
            )
            .unwrap();
            Experiment::load(&p).map_err(|e| e.to_string())
        };
        let server = "generator = \"openai:http://h:1/v1\"\nserved_model = \"m\"\n";
        let e = load(&format!(
            "{server}served_adapters = {{ vanilla = \"v\", sdft = 1 }}\n"
        ))
        .unwrap();
        let s = e.served_adapters(Path::new("x")).unwrap().unwrap();
        assert_eq!((s["vanilla"].as_str(), s["sdft"].as_str()), ("v", "1"));
        assert!(load("")
            .unwrap()
            .served_adapters(Path::new("x"))
            .unwrap()
            .is_none());
        for (extra, want) in [
            (
                format!("{server}served_adapters = {{ vanilla = \"v\" }}\n"),
                "no entry for arm `sdft`",
            ),
            (
                format!(
                    "{server}served_adapters = {{ vanilla = \"v\", sdft = \"s\", x = \"y\" }}\n"
                ),
                "served_adapters.x: no such arm",
            ),
            (server.to_string(), "needs `served_adapters"),
            (
                "served_adapters = { vanilla = \"v\" }\n".to_string(),
                "needs `generator`",
            ),
            ("adapter = \"a\"\n".to_string(), "set by the pipeline"),
        ] {
            let err = load(&extra).unwrap_err();
            assert!(err.contains(want), "{extra}: {err}");
        }
        let drift = dir.path().join("d.toml");
        std::fs::write(
            &drift,
            format!("name = \"x\"\nmodel = \"m\"\n[data]\nfile = \"d.json\"\ntask = \"gsm8k\"\n[eval]\nbenchmarks = [\"drift\"]\n{server}served_adapters = {{ vanilla = \"v\", sdft = \"s\" }}\n"),
        )
        .unwrap();
        let err = Experiment::load(&drift).unwrap_err().to_string();
        assert!(err.contains("drift"), "{err}");
        let train = dir.path().join("t.toml");
        std::fs::write(
            &train,
            "name = \"x\"\nmodel = \"m\"\n[data]\nfile = \"d.json\"\ntask = \"gsm8k\"\n[train]\ngenerator = \"openai:http://h:1/v1\"\n[eval]\nbenchmarks = [\"gsm8k\"]\n",
        )
        .unwrap();
        let err = Experiment::load(&train).unwrap_err().to_string();
        assert!(err.contains("training runs in-process"), "{err}");
    }
}
