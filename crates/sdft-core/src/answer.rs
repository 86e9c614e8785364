//! Answer-extraction rules of the paper's reference code, shared by the
//! distillation checks (`sdft-distill`) and the benchmark scorers (`sdft-eval`).
//!
//! Each function follows `../shared/docs/sdft-method.md` section (e) to the letter,
//! quirks included, so scores are comparable with the paper's.

use std::sync::OnceLock;

use regex::Regex;

/// The value the reference code's `find_last_integer` returns when a text has no
/// usable integer (`"-999999999"`). Because it is compared with `int()`, two texts
/// without an integer compare equal, exactly as in the reference.
pub const INVALID_ANSWER: i128 = -999_999_999;

fn integer_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"-?\d+(?:[,\s]\d+)*(?:\.\d+)?").expect("valid regex"))
}

/// Python's `int(s)` on a string made of an optional `-` and ASCII digits; `None`
/// where Python would raise `ValueError` (other characters, such as a newline that
/// the regex's `\s` let into a number).
fn python_int(s: &str) -> Option<i128> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i128>().ok()
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
