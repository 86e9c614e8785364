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
/// script: `"١٢"`, `"１２"` and `"१२"` are 12); `None` where Python would raise
/// `ValueError` (other characters, such as a newline that the regex's `\s` let into
/// a number) or the value does not fit an `i128`.
fn python_int(s: &str) -> Option<i128> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let mut ascii = String::with_capacity(digits.len() + 1);
    if neg {
        ascii.push('-');
    }
    for c in digits.chars() {
        ascii.push(char::from_digit(decimal_value(c)?, 10)?);
    }
    if ascii.len() == usize::from(neg) {
        return None;
    }
    ascii.parse::<i128>().ok()
}

/// The paper's `find_last_integer` followed by `int()`:
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
    let Some(m) = integer_re().find_iter(text).last() else {
        return Some(INVALID_ANSWER);
    };
    let cleaned: String = m
        .as_str()
        .chars()
        .filter(|c| *c != ',' && *c != ' ')
        .collect();
    match cleaned.split_once('.') {
        Some((int_part, frac)) => {
            let frac_value = python_int(frac)?;
            if frac_value != 0 {
                Some(INVALID_ANSWER)
            } else {
                python_int(int_part)
            }
        }
        None => python_int(&cleaned),
    }
}

/// The paper's `check_math`: the last integer of `prediction` equals the last
/// integer of `reference`; an unparsable one (see [`last_integer`]) never matches.
pub fn math_answers_match(prediction: &str, reference: &str) -> bool {
    match (last_integer(prediction), last_integer(reference)) {
        (Some(p), Some(r)) => p == r,
        _ => false,
    }
}

/// The OpenFunctions normalisation: whitespace runs collapse to one space, the
/// ends are trimmed, `'` becomes `"`, and `", "` becomes `","`.
///
/// ```
/// use sdft_core::answer::normalize_call;
/// assert_eq!(normalize_call("  f(cols=['x',   'y'])\n"), r#"f(cols=["x","y"])"#);
/// // Only `", "` between quotes collapses; a space after a keyword's comma stays.
/// assert_eq!(normalize_call("f(a='x', b='y')"), r#"f(a="x", b="y")"#);
/// ```
pub fn normalize_call(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.replace('\'', "\"").replace("\", \"", "\",\"")
}

fn call_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\((.*)\)").expect("valid regex")
    })
}

/// A function call parsed from a normalised reference: `name(params)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub params: String,
}

/// Parses a reference call (after [`normalize_call`]) with the paper's regex
/// `^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\((.*)\)`.
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
    let pattern = format!(
        r"\b{}\({}\)",
        regex::escape(&call.name),
        regex::escape(&call.params)
    );
    match Regex::new(&pattern) {
        Ok(re) => re.is_match(&normalize_call(prediction)),
        Err(_) => false,
    }
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
