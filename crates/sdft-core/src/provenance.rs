//! Provenance: what made an output, and writing it safely. The one place for
//!
//! - the **content hash** of a file or directory ([`content_hash`]);
//! - the **hex** form of a digest ([`hex`], [`sha256_hex`]);
//! - **atomic writes** with fsync ([`write_atomic`], [`write_atomic_with`]);
//! - the **data directory** of the paper's files ([`shared_data_dir`]);
//! - the **reuse rule** of every stage output ([`Settings`], [`open_output`]):
//!   an output records the settings that made it; a rerun continues it only when
//!   they are identical, redoes it with `--overwrite`, and otherwise stops with an
//!   error naming the settings that differ;
//! - the **lock** on an output being written ([`OutputLock`]): a second writer
//!   fails at once.
//!
//! # The content-hash rule
//!
//! - A file: the SHA-256 of its bytes (so a file's hash is what `sha256sum` prints).
//! - A directory: the SHA-256 of the text made of one line `"{rel}  {sha256}\n"` per
//!   regular file anywhere under it (recursively, following symbolic links), where
//!   `rel` is the file's path relative to the directory with `/` separators and
//!   `sha256` the file's own hash; the lines sorted by `rel` (byte order). Names are
//!   part of the hash: renaming a file changes it; empty directories do not.
//!
//! This is the hash of models (a GGUF file or an HF directory), adapters (the
//! adapter directory), and data files in every manifest of the workspace.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 of a file's bytes, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// The content hash of a file or directory (see the module docs for the rule).
pub fn content_hash(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        return sha256_file(path);
    }
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut stack = vec![(String::new(), path.to_path_buf())];
    while let Some((prefix, dir)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let m = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?;
            if m.is_dir() {
                stack.push((rel, p));
            } else if m.is_file() {
                files.push((rel, p));
            }
        }
    }
    files.sort();
    let mut lines = String::new();
    for (rel, p) in files {
        lines.push_str(&format!("{rel}  {}\n", sha256_file(&p)?));
    }
    Ok(sha256_hex(lines.as_bytes()))
}

/// `std::fs::create_dir_all`, with a clear error when a part of the path is a file
/// ("a/b is a file, so a/b/c cannot be created under it") instead of `EEXIST`.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    match std::fs::create_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) => {
            for a in dir.ancestors().skip(1) {
                if a.is_file() {
                    return Err(Error::io(
                        dir,
                        std::io::Error::other(format!(
                            "{} is a file, so a directory cannot be created under it",
                            a.display()
                        )),
                    ));
                }
            }
            if dir.is_file() {
                return Err(Error::io(
                    dir,
                    std::io::Error::other("is a file, not a directory"),
                ));
            }
            Err(Error::io(dir, e))
        }
    }
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates `path` atomically with what `fill` writes: a temporary file beside it
/// (mode 0666 less the umask), fsynced, renamed over `path`, and the directory
/// fsynced, so readers and crashes never see a half-written file. Creates missing
/// parent directories.
pub fn write_atomic_with<E, F>(path: &Path, fill: F) -> std::result::Result<(), E>
where
    E: From<Error>,
    F: FnOnce(&mut File) -> std::result::Result<(), E>,
{
    let dir = parent_of(path);
    create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = fill(&mut file).and_then(|()| {
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        // The rename itself is durable once the directory is synced.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f: &mut File| {
        f.write_all(bytes).map_err(|e| Error::io(path, e))
    })
}

/// The paper's data directory from the environment: `$SDFT_SHARED/data/sdft`.
pub fn shared_data_dir() -> Option<PathBuf> {
    std::env::var_os("SDFT_SHARED").map(|s| PathBuf::from(s).join("data/sdft"))
}

/// `given`, else [`shared_data_dir`].
pub fn data_dir(given: Option<&Path>) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(shared_data_dir)
}

/// `path` with `.{suffix}` appended to its file name: the sidecar files of an
/// output (`out.jsonl` -> `out.jsonl.settings.json`).
pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

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

/// Removes a file or directory tree if it exists (a `clear` for [`open_output`]).
pub fn remove_path(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_sha256_match_published_vectors() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        // FIPS 180-2 example "abc".
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_directory_hash_is_recursive_ordered_and_names_its_files() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("m");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("b.json"), b"abc").unwrap();
        std::fs::write(root.join("sub/a.bin"), b"").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let text = format!("b.json  {abc}\nsub/a.bin  {empty}\n");
        assert_eq!(content_hash(&root).unwrap(), sha256_hex(text.as_bytes()));
        assert_eq!(content_hash(&root.join("b.json")).unwrap(), abc);
        std::fs::rename(root.join("b.json"), root.join("c.json")).unwrap();
        assert_ne!(content_hash(&root).unwrap(), sha256_hex(text.as_bytes()));
    }

    #[test]
    fn a_path_under_a_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        let e = write_atomic(&d.path().join("f/g/out.json"), b"{}").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("is a file, so a directory cannot be created"),
            "{msg}"
        );
    }

    #[test]
    fn settings_diff_names_each_change() {
        let a = Settings::new().with("seed", 7).with("model_sha256", "aa");
        let b = Settings::new().with("seed", 8).with("adapter_sha256", "bb");
        let names: Vec<String> = a.diff(&b).into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["adapter_sha256", "model_sha256", "seed"]);
        assert!(a.diff(&a.clone()).is_empty());
        assert_eq!(a.diff(&b)[2].to_string(), "seed (recorded 7, now 8)");
        let s = |seed: u64| {
            Settings::new().with("sampling", serde_json::json!({"top_k": 50, "seed": seed}))
        };
        let d = s(7).diff(&s(8));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].to_string(), "sampling.seed (recorded 7, now 8)");
    }

    #[test]
    fn open_output_continues_refuses_or_starts_over() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out.jsonl");
        let sf = sidecar(&out, "settings.json");
        let s7 = Settings::new().with("seed", 7);
        let o = open_output(&out, &sf, &s7, false, || Ok(())).unwrap();
        assert_eq!(o.reuse, Reuse::Fresh);
        // A second writer fails at once while the first holds the lock.
        let e = open_output(&out, &sf, &s7, false, || Ok(())).unwrap_err();
        assert!(matches!(e, Error::Locked { .. }), "{e}");
        drop(o);
        std::fs::write(&out, b"row\n").unwrap();
        let o = open_output(&out, &sf, &s7, false, || Ok(())).unwrap();
        assert_eq!(o.reuse, Reuse::Continue);
        drop(o);
        let s8 = Settings::new().with("seed", 8);
        let e = open_output(&out, &sf, &s8, false, || Ok(())).unwrap_err();
        assert!(e.to_string().contains("seed (recorded 7, now 8)"), "{e}");
        assert!(out.is_file(), "a refused rerun leaves the output alone");
        let o = open_output(&out, &sf, &s8, true, || remove_path(&out)).unwrap();
        assert_eq!(o.reuse, Reuse::Fresh);
        assert!(!out.exists());
        assert_eq!(Settings::read(&sf).unwrap(), Some(s8));
    }

    #[test]
    fn a_stale_lock_file_is_not_a_lock() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("run");
        std::fs::write(OutputLock::path_for(&out), b"pid 1\n").unwrap();
        let l = OutputLock::acquire(&out).unwrap();
        drop(l);
        assert!(!OutputLock::path_for(&out).exists());
    }
}
