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

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

mod reuse;
pub use reuse::{open_output, reuse, Difference, OpenedOutput, OutputLock, Reuse, Settings};

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

/// Publishes the directory `tmp` (filled by the caller, beside `target`) as
/// `target`: every file under it fsynced, then `tmp` itself, an old `target`
/// removed, `tmp` renamed to `target` and the parent fsynced, so a reader or a
/// crash sees the old directory or the whole new one (a checkpoint, an adapter),
/// never a half-written file inside it.
pub fn publish_dir(tmp: &Path, target: &Path) -> Result<()> {
    fn sync_tree(dir: &Path) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            if path.is_dir() {
                sync_tree(&path)?;
            } else {
                File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Error::io(&path, e))?;
            }
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))
    }
    sync_tree(tmp)?;
    if std::fs::symlink_metadata(target).is_ok() {
        remove_path(target).map_err(|e| Error::io(target, e))?;
    }
    std::fs::rename(tmp, target).map_err(|e| Error::io(target, e))?;
    if let Ok(d) = File::open(parent_of(target)) {
        let _ = d.sync_all();
    }
    Ok(())
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
    fn a_published_directory_replaces_the_old_one_whole() {
        let d = tempfile::tempdir().unwrap();
        let (tmp, target) = (d.path().join(".tmp-1"), d.path().join("checkpoint-1"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("old.json"), b"old").unwrap();
        std::fs::create_dir_all(tmp.join("sub")).unwrap();
        std::fs::write(tmp.join("state.json"), b"new").unwrap();
        std::fs::write(tmp.join("sub/a.bin"), b"a").unwrap();
        publish_dir(&tmp, &target).unwrap();
        assert!(!tmp.exists());
        assert!(!target.join("old.json").exists());
        assert_eq!(std::fs::read(target.join("state.json")).unwrap(), b"new");
        assert_eq!(std::fs::read(target.join("sub/a.bin")).unwrap(), b"a");
        // A missing source is an error naming it, and the target stays.
        let e = publish_dir(&d.path().join(".tmp-2"), &target).unwrap_err();
        assert!(e.to_string().contains(".tmp-2"), "{e}");
        assert!(target.join("state.json").exists());
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
