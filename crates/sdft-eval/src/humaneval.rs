//! HumanEval (Chen et al. 2021): problems, the instruction-style prompt, turning a
//! model's answer into a program, and checking it in the sandbox ([`crate::exec`]).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::exec::{run_python, ExecLimits, ExecOutcome};
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

/// Runs an answer's program against the problem's tests.
pub fn check(problem: &Problem, answer: &str, limits: &ExecLimits) -> Result<ExecOutcome> {
    run_python(&program(problem, answer), limits)
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
            eprintln!("note: python3 is not available; the HumanEval check test did not run");
            return;
        }
        let p = problem();
        let l = ExecLimits::default();
        assert!(check(&p, &p.canonical_solution, &l).unwrap().passed());
        assert!(!check(&p, "    return a - b\n", &l).unwrap().passed());
        assert!(!check(&p, "    return (\n", &l).unwrap().passed());
    }
}
