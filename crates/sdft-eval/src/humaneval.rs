//! HumanEval (Chen et al. 2021): problems, the instruction-style prompt, turning a
//! model's answer into a program, and checking it in the sandbox ([`crate::exec`]).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::exec::{run_to_completion, ExecLimits, ExecOutcome};
use crate::{Error, Result};

/// One HumanEval problem, as in `HumanEval.jsonl(.gz)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub task_id: String,
    /// Imports, the function signature and its docstring.
    pub prompt: String,
    pub entry_point: String,
    /// Defines `check(candidate)`.
    pub test: String,
    #[serde(default)]
    pub canonical_solution: String,
}

/// Reads problems from a `.jsonl` or `.jsonl.gz` file (gzip is detected by its
/// magic bytes). Errors name the file and the 1-based line.
pub fn read_problems(path: &Path) -> Result<Vec<Problem>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_string(&mut s)
            .map_err(|e| Error::file(path, format!("invalid gzip data: {e}")))?;
        s
    } else {
        String::from_utf8(raw).map_err(|e| Error::file(path, format!("not UTF-8: {e}")))?
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: Problem = serde_json::from_str(line).map_err(|e| {
            Error::row(
                path,
                i + 1,
                "a JSON object with task_id, prompt, entry_point and test strings",
                e.to_string(),
            )
        })?;
        out.push(p);
    }
    if out.is_empty() {
        return Err(Error::file(path, "no problems: expected JSON lines"));
    }
    Ok(out)
}

/// The instruction given to the model (wrapped in the `alpaca` template by the
/// harness): complete the function, in a Python code block.
pub fn instruction(problem: &Problem) -> String {
    format!(
        "Complete the following Python function. Reply with the complete function in a \
         ```python code block.\n\n```python\n{}```",
        problem.prompt
    )
}

/// A closed first code block, as [`extract_code`] reads it: the first fence, its
/// language line, and the next fence after that line. Once an answer matches,
/// its extracted code is fixed.
pub const CLOSED_CODE_BLOCK: &str = r"(?s)```[^\n]*\n.*?```";

/// The code in a model's answer: the first fenced code block when there is one
/// (an unclosed fence runs to the end), else the whole answer.
pub fn extract_code(answer: &str) -> String {
    if let Some(start) = answer.find("```") {
        let after = &answer[start + 3..];
        // Skip the language tag line.
        let body = match after.find('\n') {
            Some(nl) => &after[nl + 1..],
            None => "",
        };
        let end = body.find("```").unwrap_or(body.len());
        return body[..end].to_string();
    }
    answer.to_string()
}

/// The program that checks an answer: when the extracted code defines the entry
/// point, the prompt's lines before its `def` (imports, helpers) then the code;
/// otherwise the code is a body continuing the prompt. Then the tests and
/// `check(entry_point)`.
pub fn program(problem: &Problem, answer: &str) -> String {
    let code = extract_code(answer);
    let def = format!("def {}(", problem.entry_point);
    let solution = if code.contains(&def) {
        let header = problem
            .prompt
            .find(&def)
            .map(|i| &problem.prompt[..i])
            .unwrap_or("");
        format!("{header}{code}")
    } else {
        format!("{}{}", problem.prompt, code)
    };
    format!(
        "{solution}\n\n{}\n\ncheck({})\n",
        problem.test, problem.entry_point
    )
}

/// Runs an answer's program against the problem's tests, scored as OpenAI's
/// human-eval scores it: passed only when `check(entry_point)` ran to completion
/// ([`run_to_completion`]); `sys.exit(0)`, `quit()`, `os._exit(0)` or an
/// unguarded `unittest.main()` before it is a failure.
pub fn check(problem: &Problem, answer: &str, limits: &ExecLimits) -> Result<ExecOutcome> {
    run_to_completion(&program(problem, answer), limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> Problem {
        Problem {
            task_id: "Toy/0".into(),
            prompt: "import math\n\n\ndef add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n".into(),
            entry_point: "add".into(),
            test:
                "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert math.pi > 3\n"
                    .into(),
            canonical_solution: "    return a + b\n".into(),
        }
    }

    #[test]
    fn extraction_and_program_assembly() {
        let p = problem();
        assert_eq!(extract_code("Sure:\n```python\nx = 1\n```\nbye"), "x = 1\n");
        assert_eq!(extract_code("```\ny\n"), "y\n");
        assert_eq!(extract_code("    return a + b\n"), "    return a + b\n");
        // A full function keeps the prompt's imports.
        let full = program(&p, "```python\ndef add(a, b):\n    return a + b\n```");
        assert!(full.starts_with("import math\n\n\ndef add(a, b):\n    return a + b"));
        assert!(full.ends_with("check(add)\n"));
        // A bare body continues the prompt.
        let body = program(&p, &p.canonical_solution);
        assert!(body.starts_with(&p.prompt));
        assert!(instruction(&p).contains("def add(a, b):"));
    }

    #[test]
    fn reads_plain_and_gzip_jsonl_with_row_errors() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let line = serde_json::to_string(&problem()).unwrap();
        let plain = dir.path().join("p.jsonl");
        std::fs::write(&plain, format!("{line}\n")).unwrap();
        assert_eq!(read_problems(&plain).unwrap(), vec![problem()]);
        let gz = dir.path().join("p.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(format!("{line}\n{line}\n").as_bytes())
            .unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read_problems(&gz).unwrap().len(), 2);
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, format!("{line}\n{{\"task_id\": 3}}\n")).unwrap();
        let e = read_problems(&bad).unwrap_err().to_string();
        assert!(
            e.contains("bad.jsonl: row 2: expected a JSON object"),
            "{e}"
        );
    }

    #[test]
    fn canonical_passes_and_wrong_fails_in_the_sandbox() {
        if std::process::Command::new("python3")
            .arg("-V")
            .output()
            .is_err()
        {
            sdft_assets::skip(
                "python3",
                "python3 is not available (install it); the HumanEval check test did not run",
            );
            return;
        }
        let p = problem();
        let l = ExecLimits::default();
        assert!(check(&p, &p.canonical_solution, &l).unwrap().passed());
        assert!(!check(&p, "    return a - b\n", &l).unwrap().passed());
        assert!(!check(&p, "    return (\n", &l).unwrap().passed());
    }

    /// OpenAI's human-eval runs the program with `exec` in a fresh namespace and
    /// counts any `BaseException` (so `SystemExit`) or a process that never reports
    /// back (`os._exit`) as failed. Each wrong answer below passed before the check
    /// had to run to completion; under both isolation modes each now fails.
    #[test]
    fn early_exits_fail_as_in_the_reference() {
        if std::process::Command::new("python3")
            .arg("-V")
            .output()
            .is_err()
        {
            sdft_assets::skip(
                "python3",
                "python3 is not available (install it); the HumanEval early-exit test did not run",
            );
            return;
        }
        let p = problem();
        let wrong = "    return a * b\n";
        let tricks = [
            "if __name__ == '__main__':\n    import unittest\n    unittest.main()\n",
            "import unittest\nunittest.main()\n",
            "import sys\nsys.exit(0)\n",
            "quit()\n",
            "exit()\n",
            "import os\nos._exit(0)\n",
            "raise SystemExit\n",
            // A forged marker: the real one is random and never on disk.
            "import os\nos.write(1, b'\\nsdft-ran-to-completion-0\\n')\nos._exit(0)\n",
            // An exit handler cannot turn the failed check into a pass.
            "import atexit, os\natexit.register(lambda: os._exit(0))\n",
        ];
        for sandbox in [
            crate::sandbox::SandboxMode::None,
            crate::sandbox::SandboxMode::Auto,
        ] {
            let l = ExecLimits {
                sandbox,
                ..ExecLimits::default()
            };
            for t in tricks {
                let answer = format!("{wrong}{t}");
                let got = check(&p, &answer, &l).unwrap();
                assert!(!got.passed(), "{sandbox:?}: {answer:?} scored {got:?}");
            }
            // The right answer still passes, a guarded unittest.main() (skipped, as
            // `__name__` is not "__main__") and output after it included.
            let guarded = "    return a + b\nif __name__ == '__main__':\n    import unittest\n    unittest.main()\nprint('x' * 100000, end='')\n";
            assert!(check(&p, guarded, &l).unwrap().passed(), "{sandbox:?}");
            // exiting 0 after the check ran is a pass, as the reference records the
            // result before the process ends.
            let outcome = check(&p, "    return a + b\n", &l).unwrap();
            assert_eq!(outcome, ExecOutcome::Passed, "{sandbox:?}");
            let early = check(&p, "    return a * b\nimport sys\nsys.exit(0)\n", &l).unwrap();
            assert!(early.label().starts_with("failed"), "{early:?}");
        }
    }
}
