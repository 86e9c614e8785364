//! Checks that decide whether a rewrite is kept. Each is a small [`Check`]; users
//! add their own by implementing the trait.

use sdft_core::{answer, Example};

/// Why a rewrite was rejected: the check's name and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub check: String,
    pub detail: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.check, self.detail)
    }
}

/// A rule a rewrite must pass to replace the reference response.
pub trait Check: Send + Sync {
    /// Short stable name, recorded as the fallback reason.
    fn name(&self) -> &str;
    /// `Err(detail)` when the rewrite of `example`'s final turn must not be used.
    /// Both strings are already stripped of surrounding whitespace.
    fn check(&self, example: &Example, rewrite: &str) -> std::result::Result<(), String>;
}

impl std::fmt::Debug for dyn Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Check({})", self.name())
    }
}

/// Python's `str.strip()`, as the paper's `strip_dict` applies it to every string
/// field of a row and of its rewrite ([`sdft_core::answer::py_strip`]).
pub(crate) use sdft_core::answer::py_strip;

/// Phrases whose presence (lowercased) rejects a rewrite in the paper's `verify`.
pub const BANNED_PHRASES: &[&str] = &[
    "reference answer",
    "your response",
    "my response",
    "your own response",
    "now it's your turn",
];

/// The paper's `verify`, applied to every task: rejects a rewrite whose lowercased
/// text contains a [`BANNED_PHRASES`] entry, or that starts with `"Your turn"`
/// (case-sensitive).
#[derive(Debug, Clone, Default)]
pub struct BanPhrases;

impl Check for BanPhrases {
    fn name(&self) -> &str {
        "ban_phrase"
    }

    fn check(&self, _example: &Example, rewrite: &str) -> std::result::Result<(), String> {
        let lower = rewrite.to_lowercase();
        if let Some(p) = BANNED_PHRASES.iter().find(|p| lower.contains(*p)) {
            return Err(format!("contains {p:?}"));
        }
        if rewrite.starts_with("Your turn") {
            return Err("starts with \"Your turn\"".into());
        }
        Ok(())
    }
}

/// GSM8K / MultiArith (`check_math`): the rewrite's last integer equals the
/// reference's ([`answer::math_answers_match`]).
#[derive(Debug, Clone, Default)]
pub struct MathAnswer;

impl Check for MathAnswer {
    fn name(&self) -> &str {
        "math_answer"
    }

    fn check(&self, example: &Example, rewrite: &str) -> std::result::Result<(), String> {
        let reference = py_strip(&example.output);
        if answer::math_answers_match(rewrite, reference) {
            return Ok(());
        }
        let invalid = answer::INVALID_ANSWER.to_string();
        let show = |x: Option<String>| match x {
            Some(v) if v == invalid => "no usable integer".to_string(),
            Some(v) => v,
            None => "an unparsable number".to_string(),
        };
        Err(format!(
            "final answer {} differs from the reference's {}",
            show(answer::last_integer_text(rewrite)),
            show(answer::last_integer_text(reference))
        ))
    }
}

/// OpenFunctions (`check_openfunction`): the normalised reference call appears in
/// the normalised rewrite ([`answer::call_matches`]).
#[derive(Debug, Clone, Default)]
pub struct FunctionCall;

impl Check for FunctionCall {
    fn name(&self) -> &str {
        "function_call"
    }

    fn check(&self, example: &Example, rewrite: &str) -> std::result::Result<(), String> {
        if answer::call_matches(rewrite, py_strip(&example.output)) {
            Ok(())
        } else {
            Err(format!(
                "the reference call {:?} does not appear",
                py_strip(&example.output)
            ))
        }
    }
}

/// MagiCoder (`check_magicoder`): the rewrite contains a ```` ```python ```` block and
/// starts with "I have", "Here is" or "I implemented". The reference is not compared.
#[derive(Debug, Clone, Default)]
pub struct CodeStyle;

impl Check for CodeStyle {
    fn name(&self) -> &str {
        "code_style"
    }

    fn check(&self, _example: &Example, rewrite: &str) -> std::result::Result<(), String> {
        if !rewrite.contains("```python") {
            return Err("no ```python code block".into());
        }
        if !["I have", "Here is", "I implemented"]
            .iter()
            .any(|p| rewrite.starts_with(p))
        {
            return Err("does not start with \"I have\", \"Here is\" or \"I implemented\"".into());
        }
        Ok(())
    }
}

/// A user check from a config: the rewrite must (or, with `must_match = false`,
/// must not) match a regular expression.
#[derive(Debug, Clone)]
pub struct RegexCheck {
    pub name: String,
    pub regex: regex::Regex,
    pub must_match: bool,
}

impl Check for RegexCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _example: &Example, rewrite: &str) -> std::result::Result<(), String> {
        match (self.regex.is_match(rewrite), self.must_match) {
            (true, true) | (false, false) => Ok(()),
            (false, true) => Err(format!("does not match /{}/", self.regex.as_str())),
            (true, false) => Err(format!("matches /{}/", self.regex.as_str())),
        }
    }
}

/// A user check from a config: the rewrite's length in characters lies within
/// `min..=max`.
#[derive(Debug, Clone)]
pub struct LengthCheck {
    pub name: String,
    pub min_chars: Option<usize>,
    pub max_chars: Option<usize>,
}

impl Check for LengthCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _example: &Example, rewrite: &str) -> std::result::Result<(), String> {
        let n = rewrite.chars().count();
        if let Some(min) = self.min_chars.filter(|m| n < *m) {
            return Err(format!("{n} characters, fewer than {min}"));
        }
        if let Some(max) = self.max_chars.filter(|m| n > *m) {
            return Err(format!("{n} characters, more than {max}"));
        }
        Ok(())
    }
}

/// The built-in checks by name: `ban_phrase`, `math_answer`, `function_call`,
/// `code_style`.
pub fn builtin_check(name: &str) -> Option<Box<dyn Check>> {
    Some(match name {
        "ban_phrase" | "ban_phrases" => Box::new(BanPhrases),
        "math_answer" => Box::new(MathAnswer),
        "function_call" => Box::new(FunctionCall),
        "code_style" => Box::new(CodeStyle),
        _ => return None,
    })
}

/// Names accepted by [`builtin_check`].
pub const BUILTIN_CHECKS: &str = "ban_phrase, math_answer, function_call, code_style";

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(output: &str) -> Example {
        Example::new("q", output)
    }

    #[test]
    fn ban_phrases_are_case_insensitive_but_your_turn_is_not() {
        let c = BanPhrases;
        assert!(c
            .check(&ex("x"), "Compared to the Reference Answer, ...")
            .is_err());
        assert!(c.check(&ex("x"), "Here is MY RESPONSE").is_err());
        assert!(c.check(&ex("x"), "Now it's your turn to try.").is_err());
        assert!(c.check(&ex("x"), "Your turn: solve it").is_err());
        assert!(c.check(&ex("x"), "your turn: solve it").is_ok());
        assert!(c.check(&ex("x"), "It is your turn").is_ok());
        assert!(c.check(&ex("x"), "The answer is 5.").is_ok());
    }

    #[test]
    fn math_answer_worked_cases() {
        let c = MathAnswer;
        let r = ex("She pays 1,200 dollars.\nThe answer is 1200.");
        assert!(c.check(&r, "Total: 1,200").is_ok());
        assert!(c.check(&r, "Total: 1200.00").is_ok());
        assert!(c.check(&r, "Total: 1200.5").is_err());
        assert!(c.check(&r, "no number").is_err());
        assert!(c.check(&ex("The answer is -3."), "it drops to -3").is_ok());
        assert!(c.check(&ex("The answer is -3."), "it drops by 3").is_err());
        // "18 2" reads as 182 through the \s thousands separator, as in the reference.
        assert!(c.check(&ex("The answer is 182."), "we get 18 2").is_ok());
        let err = c
            .check(&ex("The answer is 7."), "The answer is 8.")
            .unwrap_err();
        assert_eq!(err, "final answer 8 differs from the reference's 7");
    }

    #[test]
    fn function_call_normalises_quotes_and_spaces() {
        let c = FunctionCall;
        let r = ex("pyarrow.Timestamp(unit='s', tz='UTC')");
        assert!(c
            .check(
                &r,
                "Call pyarrow.Timestamp(unit=\"s\",  tz=\"UTC\") to do it"
            )
            .is_ok());
        // Every `", "` is collapsed (`s.replace(", ", ",")`), so a missing space
        // after `,` before a keyword is the same call, exactly as in the reference
        // code (goldens: `scripts/reference/make_goldens.py`).
        assert!(c.check(&r, "pyarrow.Timestamp(unit='s',tz='UTC')").is_ok());
        let list = ex("f(cols=['a', 'b'])");
        assert!(c.check(&list, "f(cols=[\"a\",\"b\"])").is_ok());
        assert!(c
            .check(&r, "pyarrow.Timestamp(unit='ms', tz='UTC')")
            .is_err());
        assert!(c
            .check(&r, "mypyarrow.Timestamp(unit='s', tz='UTC')")
            .is_err());
        assert!(c.check(&ex("not a call"), "not a call").is_err());
    }

    #[test]
    fn code_style_needs_block_and_opening() {
        let c = CodeStyle;
        assert!(c
            .check(&ex(""), "Here is the code:\n```python\nprint(1)\n```")
            .is_ok());
        assert!(c
            .check(&ex(""), "I implemented it:\n```python\n```")
            .is_ok());
        assert!(c.check(&ex(""), "Sure! ```python\n```").is_err());
        assert!(c
            .check(&ex(""), "Here is the code:\n```\nprint(1)\n```")
            .is_err());
    }

    #[test]
    fn user_checks() {
        let r = RegexCheck {
            name: "final_line".into(),
            regex: regex::Regex::new(r"The answer is -?\d+\.?$").unwrap(),
            must_match: true,
        };
        assert!(r.check(&ex(""), "so 3.\nThe answer is 3.").is_ok());
        assert_eq!(
            r.check(&ex(""), "The answer: 3").unwrap_err(),
            r"does not match /The answer is -?\d+\.?$/"
        );
        let no_urls = RegexCheck {
            name: "no_urls".into(),
            regex: regex::Regex::new("https?://").unwrap(),
            must_match: false,
        };
        assert!(no_urls.check(&ex(""), "see http://x").is_err());
        assert!(no_urls.check(&ex(""), "plain").is_ok());
        let len = LengthCheck {
            name: "length".into(),
            min_chars: Some(3),
            max_chars: Some(5),
        };
        assert!(len.check(&ex(""), "ab").is_err());
        assert!(len.check(&ex(""), "héllo").is_ok());
        assert!(len.check(&ex(""), "héllo!").is_err());
        assert_eq!(builtin_check("math_answer").unwrap().name(), "math_answer");
        assert!(builtin_check("nope").is_none());
    }
}
