//! The reuse rule and the output lock (see the parent module's docs).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{create_dir_all, parent_of, sha256_hex, write_atomic};
use crate::{Error, Result};

/// The settings that made an output: an ordered map of named values (model and
/// adapter hashes, data hash, template, sampling, limits, crate version, ...).
/// Adding a setting is one [`Settings::with`] call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Settings(BTreeMap<String, Value>);

/// One setting that differs between a recorded output and a rerun.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub name: String,
    /// The value the output was made with (`None`: not recorded).
    pub recorded: Option<Value>,
    /// The value of this run (`None`: not set now).
    pub now: Option<Value>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| match v {
            None => "(none)".to_string(),
            Some(v) => {
                let s = v.to_string();
                if s.chars().count() > 80 {
                    format!("{}...", s.chars().take(77).collect::<String>())
                } else {
                    s
                }
            }
        };
        write!(
            f,
            "{} (recorded {}, now {})",
            self.name,
            show(&self.recorded),
            show(&self.now)
        )
    }
}

impl Settings {
    /// Settings with the crate version (`crate_version`) recorded.
    pub fn new() -> Self {
        Settings::default().with("crate_version", crate::VERSION)
    }

    /// Adds (or replaces) the setting `name`.
    pub fn with(mut self, name: &str, value: impl Serialize) -> Self {
        self.set(name, value);
        self
    }

    /// Adds (or replaces) the setting `name`.
    pub fn set(&mut self, name: &str, value: impl Serialize) {
        let v = serde_json::to_value(value).unwrap_or(Value::Null);
        self.0.insert(name.to_string(), v);
    }

    /// Removes the setting `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }

    /// SHA-256 of the settings as compact JSON (names in order): a key that
    /// changes exactly when a setting does.
    pub fn sha256(&self) -> String {
        sha256_hex(
            serde_json::to_string(&self.0)
                .expect("settings serialize")
                .as_bytes(),
        )
    }

    /// The settings whose values differ between `self` (recorded) and `now`, in
    /// name order; a setting present on one side only differs. Where both values
    /// are JSON objects the differing members are named (`sampling.seed`).
    pub fn diff(&self, now: &Settings) -> Vec<Difference> {
        let map = |m: &BTreeMap<String, Value>| -> Map { m.clone().into_iter().collect() };
        let mut out = Vec::new();
        diff_maps("", &map(&self.0), &map(&now.0), &mut out);
        out
    }

    /// Reads settings written by [`Settings::write`]; `None` when there is no file.
    pub fn read(path: &Path) -> Result<Option<Settings>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::io(
                path,
                std::io::Error::other(format!("expected a JSON object of settings: {e}")),
            )
        })
    }

    /// Writes the settings as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.0).expect("settings serialize");
        write_atomic(path, format!("{text}\n").as_bytes())
    }
}

type Map = serde_json::Map<String, Value>;

fn diff_maps(prefix: &str, old: &Map, now: &Map, out: &mut Vec<Difference>) {
    let mut names: Vec<&String> = old.keys().chain(now.keys()).collect();
    names.sort();
    names.dedup();
    for n in names {
        let (a, b) = (old.get(n), now.get(n));
        if a == b {
            continue;
        }
        let name = format!("{prefix}{n}");
        if let (Some(Value::Object(x)), Some(Value::Object(y))) = (a, b) {
            diff_maps(&format!("{name}."), x, y, out);
            continue;
        }
        out.push(Difference {
            name,
            recorded: a.cloned(),
            now: b.cloned(),
        });
    }
}

/// An exclusive lock on an output being written: the file `.NAME.lock` beside it,
/// held with `flock(LOCK_EX | LOCK_NB)`. The kernel releases the lock when the
/// process ends, however it ends, so a lock file left by a killed run is not a lock
/// (stale-lock safe); dropping the guard removes the file and releases the lock.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    file: File,
}

impl OutputLock {
    /// The lock file of `output`.
    pub fn path_for(output: &Path) -> PathBuf {
        let name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        parent_of(output).join(format!(".{name}.lock"))
    }

    /// Takes the lock of `output` or fails at once with [`Error::Locked`] when
    /// another process holds it. Creates the output's parent directory.
    pub fn acquire(output: &Path) -> Result<OutputLock> {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::io::AsRawFd;
        let path = Self::path_for(output);
        create_dir_all(parent_of(output))?;
        loop {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            // SAFETY: flock on a file descriptor we own; no memory is shared.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    return Err(Error::Locked {
                        output: output.to_path_buf(),
                        lock: path,
                        holder: holder.trim().to_string(),
                    });
                }
                return Err(Error::io(&path, e));
            }
            // The previous holder may have removed the file between our open and
            // our flock: then we hold a lock on an unlinked inode; try again.
            let ours = file.metadata().map_err(|e| Error::io(&path, e))?;
            match std::fs::metadata(&path) {
                Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => {}
                _ => continue,
            }
            let _ = file.set_len(0);
            let _ = writeln!(file, "pid {}", std::process::id());
            return Ok(OutputLock { path, file });
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock; closing the file releases it.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.sync_all();
    }
}

/// How [`open_output`] found an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Nothing usable was there (or `--overwrite`): the work starts from scratch.
    Fresh,
    /// The output was made with the same settings: continue (or reuse) it.
    Continue,
}

/// An output opened for writing: its lock, and whether its earlier content is kept.
#[derive(Debug)]
pub struct OpenedOutput {
    pub lock: OutputLock,
    pub reuse: Reuse,
}

/// The one reuse rule, with the lock: [`OutputLock::acquire`] on `output`, then
/// [`reuse`].
pub fn open_output<F>(
    output: &Path,
    settings_file: &Path,
    settings: &Settings,
    overwrite: bool,
    clear: F,
) -> Result<OpenedOutput>
where
    F: FnOnce() -> std::io::Result<()>,
{
    let lock = OutputLock::acquire(output)?;
    let reuse = reuse(output, settings_file, settings, overwrite, clear)?;
    Ok(OpenedOutput { lock, reuse })
}

/// The one reuse rule (the caller holds the output's lock). Compares `settings`
/// with those recorded in `settings_file`:
///
/// - identical: [`Reuse::Continue`] (the stage resumes or reuses what is there);
/// - none recorded, or `overwrite`: [`Reuse::Fresh`]: `clear` removes the earlier
///   content, then `settings` are recorded (before any new content is written);
/// - different: [`Error::SettingsChanged`] naming each differing setting, and the
///   output is left as it is.
pub fn reuse<F>(
    output: &Path,
    settings_file: &Path,
    settings: &Settings,
    overwrite: bool,
    clear: F,
) -> Result<Reuse>
where
    F: FnOnce() -> std::io::Result<()>,
{
    let recorded = Settings::read(settings_file)?;
    if let Some(old) = &recorded {
        let diff = old.diff(settings);
        if !overwrite {
            if diff.is_empty() {
                return Ok(Reuse::Continue);
            }
            return Err(Error::SettingsChanged {
                output: output.to_path_buf(),
                differences: diff
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        std::fs::remove_file(settings_file).map_err(|e| Error::io(settings_file, e))?;
    }
    clear().map_err(|e| Error::io(output, e))?;
    settings.write(settings_file)?;
    Ok(Reuse::Fresh)
}
