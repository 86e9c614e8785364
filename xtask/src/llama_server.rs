//! `cargo xtask llama-server [--source DIR] [--jobs N] [--targets a,b]`: builds
//! llama.cpp's `llama-server` (and `llama-quantize`, plus any extra `--targets` such
//! as `llama-bench,llama-batched-bench` for docs/performance.md) from the
//! `llama-cpp-python==0.3.36` source archive, with cmake from pip, into `$SDFT_HOME`:
//!
//! 1. the archive from PyPI's simple index (SHA-256 pinned below), unpacked into
//!    `$SDFT_HOME/llama.cpp/` (kept, so a rerun builds incrementally);
//! 2. `cmake` from `PATH`, or else from a venv at `$SDFT_HOME/llama.cpp/venv`
//!    (`pip install cmake`);
//! 3. `cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
//!    -DLLAMA_BUILD_SERVER=ON`, then only the targets asked for;
//! 4. links `$SDFT_HOME/bin/<target>` to each binary (where the serving tests look
//!    for `llama-server` when `SDFT_LLAMA_SERVER` is unset), and writes the cached
//!    SmolLM2 GGUF dequantized to F32 as `$SDFT_HOME/models/SmolLM2-135M-Instruct.F32.gguf`.
//!
//! `--source DIR` builds an already unpacked `vendor/llama.cpp` (its `build/` folder
//! is reused) instead of downloading.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sdft_assets as assets;

const SDIST: &str = "llama_cpp_python-0.3.36.tar.gz";
const SDIST_SHA256: &str = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e";
const PYPI_SIMPLE: &str = "https://pypi.org/simple/llama-cpp-python/";

/// Where the binaries are linked (`$SDFT_HOME/bin`).
pub fn bin_dir() -> PathBuf {
    assets::sdft_home().join("bin")
}

/// The F32 GGUF of the cached SmolLM2 model that the serving comparison uses.
pub fn f32_gguf() -> PathBuf {
    assets::sdft_home()
        .join("models")
        .join("SmolLM2-135M-Instruct.F32.gguf")
}

/// The workspace's `run` (echo, status check), with the step named in errors.
fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let cmd = std::mem::replace(cmd, Command::new(""));
    crate::run(cmd).with_context(|| what.to_string())
}

/// Downloads the source archive (its link on PyPI's simple index, then the file;
/// python3's urllib, as the asset fetcher relies on python3 too; not `pip download`,
/// which prepares the package's metadata with its build backend) into `dir` and checks its SHA-256.
fn download_sdist(dir: &Path) -> Result<PathBuf> {
    let target = dir.join(SDIST);
    if target.is_file() && assets_sha(&target)? == SDIST_SHA256 {
        return Ok(target);
    }
    let tmp = dir.join(format!("{SDIST}.part"));
    let script = r##"import re, sys, urllib.request
page = urllib.request.urlopen(sys.argv[1], timeout=60).read().decode()
m = re.search(r'href="([^"#]*/' + re.escape(sys.argv[2]) + r')#sha256=', page)
if not m:
    sys.exit("no " + sys.argv[2] + " on " + sys.argv[1])
url = m.group(1)
with urllib.request.urlopen(url, timeout=600) as r, open(sys.argv[3], "wb") as f:
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        f.write(b)
"##;
    run(
        Command::new("python3")
            .args(["-c", script, PYPI_SIMPLE, SDIST])
            .arg(&tmp),
        "downloading the llama-cpp-python 0.3.36 source archive from PyPI",
    )?;
    let sum = assets_sha(&tmp)?;
    if sum != SDIST_SHA256 {
        bail!(
            "{}: sha256 {sum} does not match the expected {SDIST_SHA256}",
            tmp.display()
        );
    }
    std::fs::rename(&tmp, &target).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(target)
}

fn assets_sha(p: &Path) -> Result<String> {
    Ok(sdft_core::provenance::sha256_file(p)?)
}

/// `cmake` on PATH, or one installed by pip into a venv under `dir`.
fn cmake(dir: &Path) -> Result<PathBuf> {
    if let Some(c) = std::env::var_os("CMAKE") {
        return Ok(PathBuf::from(c));
    }
    let works = |c: &Path| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(Path::new("cmake")) {
        return Ok(PathBuf::from("cmake"));
    }
    let venv = dir.join("venv");
    let c = venv.join("bin/cmake");
    if !works(&c) {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "making a venv for cmake",
        )?;
        run(
            Command::new(venv.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "cmake",
                ])
                .arg("--quiet"),
            "installing cmake from PyPI",
        )?;
    }
    Ok(c)
}

pub fn run_command(args: &[String]) -> Result<()> {
    let mut source: Option<PathBuf> = None;
    let mut jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut targets = vec!["llama-server".to_string(), "llama-quantize".to_string()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{a} needs a value"))
                .cloned()
        };
        match a.as_str() {
            "--source" => source = Some(PathBuf::from(value()?)),
            "--jobs" => jobs = value()?.parse().context("--jobs: expected a number")?,
            "--targets" => targets.extend(value()?.split(',').map(str::to_string)),
            other => bail!("llama-server: unknown argument {other}; usage: cargo xtask llama-server [--source DIR] [--jobs N] [--targets a,b]"),
        }
    }
    let home = assets::sdft_home().join("llama.cpp");
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let src = match source {
        Some(s) => s,
        None => {
            let archive = download_sdist(&home)?;
            let src = home.join("llama_cpp_python-0.3.36/vendor/llama.cpp");
            if !src.join("CMakeLists.txt").is_file() {
                run(
                    Command::new("tar")
                        .arg("xzf")
                        .arg(&archive)
                        .arg("-C")
                        .arg(&home),
                    "unpacking the source archive",
                )?;
            }
            src
        }
    };
    if !src.join("tools/server").is_dir() {
        bail!(
            "{}: not llama.cpp's source folder (no tools/server)",
            src.display()
        );
    }
    let cmake = cmake(&home)?;
    let build = src.join("build");
    run(
        Command::new(&cmake)
            .arg("-S")
            .arg(&src)
            .arg("-B")
            .arg(&build)
            .args([
                "-DCMAKE_BUILD_TYPE=Release",
                "-DGGML_NATIVE=ON",
                "-DLLAMA_CURL=OFF",
                "-DLLAMA_BUILD_SERVER=ON",
            ]),
        "configuring llama.cpp",
    )?;
    run(
        Command::new(&cmake)
            .arg("--build")
            .arg(&build)
            .arg("--target")
            .args(&targets)
            .arg(format!("-j{jobs}")),
        "building",
    )?;
    let bin = bin_dir();
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    for t in &targets {
        let built = build.join("bin").join(t);
        if !built.is_file() {
            bail!("{}: not built", built.display());
        }
        let link = bin.join(t);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&built, &link)
            .with_context(|| format!("linking {}", link.display()))?;
        eprintln!("xtask: {} -> {}", link.display(), built.display());
    }
    // `cached_quiet`, not `cached_model`: a missing model is no test skip here
    // (and must not fail the build under CI).
    if let (Some(q4), false) = (
        assets::cached_quiet(&format!("models/{}", assets::SMOLLM2_135M_INSTRUCT.file)),
        f32_gguf().is_file(),
    ) {
        let tmp = f32_gguf().with_extension("gguf.part");
        run(
            Command::new(bin.join("llama-quantize"))
                .arg("--allow-requantize")
                .arg(&q4)
                .arg(&tmp)
                .arg("F32"),
            "writing the F32 GGUF of SmolLM2-135M-Instruct",
        )?;
        std::fs::rename(&tmp, f32_gguf())?;
    }
    eprintln!(
        "xtask: llama-server is {} (the serving tests find it there; or set SDFT_LLAMA_SERVER)",
        bin.join("llama-server").display()
    );
    Ok(())
}
