//! Stages of a pipeline run and the run manifest that makes re-runs incremental.
//!
//! A stage is one `sdft` subcommand run as a child process (its own progress bars
//! and resume logic apply). Its settings (`sdft_core::provenance::Settings`: its
//! command line, the content hashes of its input files and the crate version) give
//! its *key* (`Settings::sha256`). `RUN/manifest.json` records each
//! stage's key, status and timing: a re-run skips a stage whose key is unchanged and
//! which finished; a stage that was interrupted runs its same command again, which
//! resumes it; a stage whose inputs changed starts over in a clean folder.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{Error, Result};
use sdft_core::provenance::{content_hash, Settings};
use serde::{Deserialize, Serialize};

/// One stage: a name, the `sdft` arguments, the files whose content it depends on,
/// and the folder or file it writes (removed before a fresh start).
pub struct Stage {
    pub name: String,
    pub args: Vec<OsString>,
    pub inputs: Vec<PathBuf>,
    pub output: PathBuf,
    /// Extra arguments when resuming an interrupted stage (e.g. `--resume`).
    pub resume_args: Vec<OsString>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub key: String,
    /// `running` (started, not finished) or `done`.
    pub status: String,
    pub command: Vec<String>,
    pub seconds: f64,
    pub finished_at: Option<String>,
    /// The settings the key was made from, so a changed stage can say what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Settings>,
}

/// `RUN/manifest.json`: what the run is made of and what each stage did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunManifest {
    pub name: String,
    pub crate_version: String,
    pub git_commit: Option<String>,
    pub config: serde_json::Value,
    pub config_sha256: String,
    pub seed: u64,
    pub model: String,
    pub model_sha256: String,
    pub data: PathBuf,
    pub data_sha256: String,
    pub distill_template: String,
    pub train_template: String,
    /// Per stage table (`distill`, `train`, `eval`): the prompt format, and for
    /// `distill` and `train` the template hash (each benchmark's is in its
    /// `results.json`).
    #[serde(default)]
    pub prompts: BTreeMap<String, serde_json::Value>,
    pub stages: BTreeMap<String, StageRecord>,
}

impl RunManifest {
    pub fn path(run: &Path) -> PathBuf {
        run.join("manifest.json")
    }

    pub fn load(run: &Path) -> Option<RunManifest> {
        let text = std::fs::read_to_string(Self::path(run)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self, run: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a manifest serializes");
        sdft_core::provenance::write_atomic(&Self::path(run), text.as_bytes())?;
        Ok(())
    }
}

impl Stage {
    fn command_line(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// The stage's settings: its command line, its inputs' content hashes (by
    /// path) and the crate version.
    pub fn settings(&self) -> Result<Settings> {
        let mut inputs = BTreeMap::new();
        for i in &self.inputs {
            inputs.insert(i.display().to_string(), content_hash(i)?);
        }
        Ok(Settings::new()
            .with("command", self.command_line())
            .with("inputs", inputs))
    }

    /// True when `manifest` records this stage as done with the same key (command
    /// and input hashes) and its output exists.
    pub fn is_done(&self, manifest: &RunManifest) -> bool {
        let Ok(settings) = self.settings() else {
            return false;
        };
        manifest.stages.get(&self.name).is_some_and(|r| {
            r.key == settings.sha256() && r.status == "done" && self.output.exists()
        })
    }

    /// Runs the stage as `exe ARGS` (the `sdft` binary) unless the manifest
    /// says it already finished with this key; `log` gets one line per event.
    /// Returns whether it ran.
    pub fn run(
        &self,
        exe: &Path,
        run_dir: &Path,
        manifest: &mut RunManifest,
        log: &mut dyn FnMut(&str),
    ) -> Result<bool> {
        let settings = self.settings()?;
        let key = settings.sha256();
        let mut args = self.args.clone();
        match manifest.stages.get(&self.name) {
            Some(r) if r.key == key && r.status == "done" && self.output.exists() => {
                log(&format!("== {}: up to date, skipped", self.name));
                return Ok(false);
            }
            Some(r) if r.key == key => {
                log(&format!("== {}: resuming the interrupted stage", self.name));
                if self.output.exists() {
                    args.extend(self.resume_args.iter().cloned());
                }
            }
            Some(r) => {
                let changed = match &r.settings {
                    Some(old) => old
                        .diff(&settings)
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                    None => "inputs changed".into(),
                };
                log(&format!("== {}: {changed}; starting over", self.name));
                remove(&self.output)?;
            }
            None => {
                remove(&self.output)?;
                log(&format!("== {}", self.name));
            }
        }
        let command = self.command_line();
        manifest.stages.insert(
            self.name.clone(),
            StageRecord {
                key: key.clone(),
                status: "running".into(),
                command: command.clone(),
                seconds: 0.0,
                finished_at: None,
                settings: Some(settings),
            },
        );
        manifest.save(run_dir)?;
        log(&format!("   sdft {}", command.join(" ")));
        let start = Instant::now();
        let status = Command::new(exe)
            .args(&args)
            .status()
            .map_err(|e| Error::Stage {
                stage: self.name.clone(),
                message: format!("starting {}: {e}", exe.display()),
            })?;
        if !status.success() {
            return Err(Error::Stage {
                stage: self.name.clone(),
                message: format!(
                    "failed ({status}); fix the cause and rerun the same command to resume"
                ),
            });
        }
        let seconds = start.elapsed().as_secs_f64();
        let record = manifest.stages.get_mut(&self.name).expect("inserted above");
        record.status = "done".into();
        record.seconds = seconds;
        record.finished_at = Some(now_utc());
        manifest.save(run_dir)?;
        log(&format!("   {} done in {seconds:.1}s", self.name));
        Ok(true)
    }
}

fn remove(p: &Path) -> Result<()> {
    if p.is_dir() {
        std::fs::remove_dir_all(p).map_err(|e| Error::io(p, e))?;
    } else if p.exists() {
        std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
    }
    Ok(())
}

/// Seconds since the Unix epoch, as text (no date crate needed).
fn now_utc() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("unix:{s}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_command_and_the_inputs_content() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("data.json");
        std::fs::write(&input, "[1]").unwrap();
        let stage = |args: &[&str]| Stage {
            name: "distill".into(),
            args: args.iter().map(OsString::from).collect(),
            inputs: vec![input.clone()],
            output: dir.path().join("out"),
            resume_args: Vec::new(),
        };
        let a = stage(&["distill", "--seed", "1"]).settings().unwrap();
        assert_eq!(
            a.sha256(),
            stage(&["distill", "--seed", "1"])
                .settings()
                .unwrap()
                .sha256()
        );
        let b = stage(&["distill", "--seed", "2"]).settings().unwrap();
        assert_ne!(a.sha256(), b.sha256());
        std::fs::write(&input, "[2]").unwrap();
        let c = stage(&["distill", "--seed", "1"]).settings().unwrap();
        assert_ne!(a.sha256(), c.sha256());
        let diff: Vec<String> = a.diff(&c).iter().map(|d| d.to_string()).collect();
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(diff[0].starts_with("inputs."), "{diff:?}");
    }
}
