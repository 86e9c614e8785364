//! Answer-extraction rules of the paper's reference code, shared by the
//! distillation checks (`sdft-distill`) and the benchmark scorers (`sdft-eval`).
//!
//! Each function follows the paper's evaluation rules (`docs/eval.md`, "Scoring
//! rules") to the letter,
//! quirks included, so scores are comparable with the paper's.

use std::sync::OnceLock;

use regex::Regex;

/// The value the reference code's `find_last_integer` returns when a text has no
/// usable integer (`"-999999999"`). Because it is compared with `int()`, two texts
/// without an integer compare equal, exactly as in the reference.
pub const INVALID_ANSWER: i128 = -999_999_999;

fn integer_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // Python's `re` on a str: `\d` is any Unicode decimal digit (category Nd), as
    // is the regex crate's; Python's `\s` is `str.isspace()`, which adds the
    // separators U+001C..U+001F to Unicode's White_Space (the regex crate's `\s`).
    RE.get_or_init(|| Regex::new(r"-?\d+(?:[,\s\x1c-\x1f]\d+)*(?:\.\d+)?").expect("valid regex"))
}

/// The value of a Unicode decimal digit (category Nd), as Python's `int()` reads
/// it. Unicode encodes every Nd run as contiguous ranges of ten, 0 to 9 (a
/// stability policy), so the digit is its distance from the start of its run of Nd
/// code points, modulo ten (runs such as the mathematical digits U+1D7CE.. are
/// several such ranges back to back).
fn decimal_value(c: char) -> Option<u32> {
    static ND: OnceLock<Regex> = OnceLock::new();
    let nd = ND.get_or_init(|| Regex::new(r"^\d$").expect("valid regex"));
    let is_nd = |c: char| nd.is_match(c.encode_utf8(&mut [0; 4]));
    if c.is_ascii_digit() {
        return c.to_digit(10);
    }
    if !is_nd(c) {
        return None;
    }
    let mut start = c as u32;
    while let Some(prev) = start.checked_sub(1).and_then(char::from_u32) {
        if !is_nd(prev) {
            break;
        }
        start -= 1;
    }
    Some((c as u32 - start) % 10)
}

/// Python's `int(s)` on a string made of an optional `-` and decimal digits (any
/// script: `"١٢"`, `"１٢"` and `"१२"` are 12), as canonical decimal text (no
/// leading zeros, no `-0`); `None` where Python would raise `ValueError` (other
/// characters, such as a newline that the regex's `\s` let into a number).
/// Python's integers have no size limit, and neither has this text.
fn python_int(s: &str) -> Option<String> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let mut ascii = String::with_capacity(digits.len() + 1);
    for c in digits.chars() {
        ascii.push(char::from_digit(decimal_value(c)?, 10)?);
    }
    if ascii.is_empty() {
        return None;
    }
    let trimmed = ascii.trim_start_matches('0');
    Some(match (trimmed.is_empty(), neg) {
        (true, _) => "0".to_string(),
        (false, true) => format!("-{trimmed}"),
        (false, false) => trimmed.to_string(),
    })
}

/// The paper's `find_last_integer` followed by `int()`, as exact decimal text:
///
/// - find every match of `-?\d+(?:[,\s]\d+)*(?:\.\d+)?`, take the **last** one;
/// - delete commas and spaces (so `"18 2"` reads as 182 and `"1,000"` as 1000);
/// - a non-zero fractional part gives [`INVALID_ANSWER`], a zero one is dropped;
/// - no match gives [`INVALID_ANSWER`].
///
/// Returns `None` where the reference's `int()` raises (for example a number split by
/// a newline, `"18\n2"`); the reference counts that as a wrong answer.
///
/// ```
/// use sdft_core::answer::last_integer_text;
/// assert_eq!(last_integer_text("3 apples and 1,250 pears").as_deref(), Some("1250"));
/// assert_eq!(last_integer_text("no numbers").as_deref(), Some("-999999999"));
/// // Any length, as Python's int.
/// let big = "123456789012345678901234567890123456789012345";
/// assert_eq!(last_integer_text(big).as_deref(), Some(big));
/// ```
pub fn last_integer_text(text: &str) -> Option<String> {
    let invalid = || Some(INVALID_ANSWER.to_string());
    let Some(m) = integer_re().find_iter(text).last() else {
        return invalid();
    };
    let cleaned: String = m
        .as_str()
        .chars()
        .filter(|c| *c != ',' && *c != ' ')
        .collect();
    match cleaned.split_once('.') {
        Some((int_part, frac)) => {
            if python_int(frac)? != "0" {
                invalid()
            } else {
                python_int(int_part)
            }
        }
        None => python_int(&cleaned),
    }
}

/// [`last_integer_text`] as a number: `None` also where it does not fit an `i128`.
///
/// ```
/// use sdft_core::answer::{last_integer, INVALID_ANSWER};
/// assert_eq!(last_integer("3 apples and 1,250 pears"), Some(1250));
/// assert_eq!(last_integer("The answer is -7."), Some(-7));
/// assert_eq!(last_integer("about 2.50 dollars"), Some(INVALID_ANSWER));
/// assert_eq!(last_integer("exactly 4.00"), Some(4));
/// assert_eq!(last_integer("no numbers"), Some(INVALID_ANSWER));
/// assert_eq!(last_integer("18\n2"), None);
/// // Any script's decimal digits, as Python's `\d` and `int()` read them.
/// assert_eq!(last_integer("The answer is ١٢"), Some(12));
/// ```
pub fn last_integer(text: &str) -> Option<i128> {
    last_integer_text(text)?.parse().ok()
}

/// The paper's `check_math`: the last integer of `prediction` equals the last
/// integer of `reference`; an unparsable one (see [`last_integer`]) never matches.
pub fn math_answers_match(prediction: &str, reference: &str) -> bool {
    match (last_integer_text(prediction), last_integer_text(reference)) {
        (Some(p), Some(r)) => p == r,
        _ => false,
    }
}

/// Python's whitespace (`str.isspace()`, which `str.strip()` and `re`'s `\s` use):
/// Unicode White_Space plus the separators U+001C..U+001F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.strip()`: [`str::trim`] that also removes U+001C..U+001F, as the
/// reference code strips every field of a row and every rewrite.
///
/// ```
/// assert_eq!(sdft_core::answer::py_strip("\x1f Q \n"), "Q");
/// ```
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// The OpenFunctions normalisation of the reference code
/// (`standardize_function_call` in `eval/eval_openfunction.py`, both branches):
/// whitespace runs collapse to one space, the ends are trimmed, `'` becomes `"`,
/// and **every** `", "` becomes `","` (`s.replace(", ", ",")`), wherever it is.
///
/// ```
/// use sdft_core::answer::normalize_call;
/// assert_eq!(normalize_call("  f(cols=['x',   'y'])\n"), r#"f(cols=["x","y"])"#);
/// // Every comma-space loses its space, between arguments too.
/// assert_eq!(normalize_call("f(a='x', b='y')"), r#"f(a="x",b="y")"#);
/// assert_eq!(normalize_call("f(a=1, b=2)"), "f(a=1,b=2)");
/// ```
pub fn normalize_call(text: &str) -> String {
    // Python's `re.sub(r'\s+', ' ', s.strip())`: `str.strip()` and `\s` are both
    // Python's whitespace, which `split_whitespace` does not quite match.
    let mut collapsed = String::with_capacity(text.len());
    let mut in_space = false;
    for c in py_strip(text).chars() {
        if is_py_space(c) {
            if !in_space {
                collapsed.push(' ');
            }
            in_space = true;
        } else {
            collapsed.push(c);
            in_space = false;
        }
    }
    collapsed.replace('\'', "\"").replace(", ", ",")
}

fn call_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\((.*)\)")
            .expect("valid regex")
    })
}

/// A function call parsed from a normalised reference: `name(params)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub params: String,
}

/// Parses a reference call (after [`normalize_call`]) with the paper's regex
/// `([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z_][a-zA-Z0-9_]*)*)\((.*)\)` under `re.match`
/// (anchored at the start; ASCII names).
pub fn parse_call(normalized: &str) -> Option<Call> {
    let caps = call_re().captures(normalized)?;
    Some(Call {
        name: caps[1].to_string(),
        params: caps[2].to_string(),
    })
}

/// The strict OpenFunctions rule (`check_openfunction`, and the `main` branch's
/// scorer): the normalised reference `NAME(PARAMS)` occurs in the normalised
/// prediction, starting at a word boundary. A reference that does not parse as a call
/// never matches.
///
/// ```
/// use sdft_core::answer::call_matches;
/// let reference = "pyarrow.Timestamp(unit='s')";
/// assert!(call_matches("Use `pyarrow.Timestamp(unit=\"s\")` here.", reference));
/// assert!(!call_matches("pyarrow.Timestamp(unit='ms')", reference));
/// ```
pub fn call_matches(prediction: &str, reference: &str) -> bool {
    let Some(call) = parse_call(&normalize_call(reference)) else {
        return false;
    };
    let needle = format!("{}({})", call.name, call.params);
    let hay = normalize_call(prediction);
    // Python's `re.search(r'\b' + re.escape(needle), hay)`: an occurrence of the
    // literal call at the start or after a character that is not one of Python's
    // word characters (`str.isalnum()` or `_`: letters and numbers, superscripts
    // included, combining marks not), which the regex crate's `\b` defines
    // otherwise.
    let mut from = 0;
    while let Some(i) = hay[from..].find(&needle).map(|i| i + from) {
        let before = hay[..i].chars().next_back();
        if before.is_none_or(|c| !is_py_word(c)) {
            return true;
        }
        from = i + hay[i..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// Python's `\w` on a `str`: a letter or number of any script (`str.isalnum()`),
/// or `_`.
fn is_py_word(c: char) -> bool {
    static WORD: OnceLock<Regex> = OnceLock::new();
    c == '_'
        || WORD
            .get_or_init(|| Regex::new(r"^[\p{L}\p{N}]$").expect("valid regex"))
            .is_match(c.encode_utf8(&mut [0; 4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked cases, each value what the paper's `find_last_integer` and `int()`
    /// give under CPython 3.11 (`None` where `int()` raises).
    #[test]
    fn unicode_digits_as_python_reads_them() {
        let cases: [(&str, Option<i128>); 12] = [
            ("The answer is ١٢", Some(12)),    // Arabic-Indic
            ("The answer is １２.", Some(12)), // full-width
            ("उत्तर १२ है", Some(12)),           // Devanagari
            ("1٢", Some(12)),                  // mixed scripts in one number
            ("-١٢", Some(-12)),
            ("１２.００", Some(12)),
            ("𝟏𝟐", Some(12)), // mathematical bold, runs of ten back to back
            ("𝟗𝟖", Some(98)),
            ("٣,٤٥٦", Some(3456)), // `,` still joins groups
            ("١٬٢", Some(2)),      // the Arabic thousands separator does not
            ("1\x1c2", None),      // Python's `\s` includes U+001C; int() raises
            ("1\u{2002}2", None),  // an EN SPACE joins, is not deleted, int() raises
        ];
        for (text, want) in cases {
            assert_eq!(last_integer(text), want, "{text:?}");
        }
        assert!(math_answers_match("The answer is ١٢", "The answer is 12."));
    }
}
