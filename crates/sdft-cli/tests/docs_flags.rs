//! The documentation and the binary agree: every `sdft` subcommand and flag that
//! README.md and docs/*.md name exists in the built binary's `--help`, every
//! subcommand of `--help` is documented somewhere, and every flag and argument
//! has a help text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One subcommand's help: its long flags, its subcommands, and the flags or
/// arguments shown without a description.
#[derive(Debug, Default)]
struct Help {
    flags: BTreeSet<String>,
    subcommands: Vec<String>,
    undescribed: Vec<String>,
}

fn help(path: &[String]) -> Help {
    let o = Command::new(env!("CARGO_BIN_EXE_sdft"))
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success(), "sdft {} --help failed", path.join(" "));
    parse_help(&String::from_utf8(o.stdout).unwrap())
}

/// Reads clap's `--help` layout: `Commands:`, `Arguments:` and `Options:`
/// sections of two-space indented entries, each with its description on the
/// same line or on the more indented lines below it.
fn parse_help(text: &str) -> Help {
    let mut h = Help::default();
    let lines: Vec<&str> = text.lines().collect();
    let mut section = "";
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line.trim_end_matches(':');
            continue;
        }
        let entry = line.trim_start();
        let indent = line.len() - entry.len();
        if entry.is_empty() || !(2..=6).contains(&indent) {
            continue;
        }
        let (head, same_line) = match entry.find("  ") {
            Some(at) => (&entry[..at], entry[at..].trim()),
            None => (entry, ""),
        };
        let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
        let next_is_text = lines.get(i + 1).is_some_and(|l| {
            let t = l.trim_start();
            l.len() - t.len() > indent + 2 && !t.is_empty()
        });
        let description = if same_line.is_empty() && next_is_text {
            next
        } else {
            same_line
        };
        let described = !description.is_empty() && !description.starts_with("[default");
        match section {
            "Commands" => {
                let name = head.split_whitespace().next().unwrap().to_string();
                if name != "help" {
                    h.subcommands.push(name);
                }
            }
            "Options" | "Arguments" => {
                for word in head.split([',', ' ']) {
                    let word = word.trim_end_matches("...");
                    if let Some(flag) = word.strip_prefix("--") {
                        h.flags.insert(flag.to_string());
                    }
                }
                if !described {
                    h.undescribed.push(head.to_string());
                }
            }
            _ => {}
        }
    }
    h
}

/// Every subcommand path of the binary (`[]`, `["data"]`, `["data", "inspect"]`,
/// ...) with its help.
fn all_help() -> BTreeMap<Vec<String>, Help> {
    let mut out = BTreeMap::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let h = help(&path);
        for s in &h.subcommands {
            let mut p = path.clone();
            p.push(s.clone());
            todo.push(p);
        }
        out.insert(path, h);
    }
    out
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The `sdft ...` command lines of a Markdown text: code-block lines (joined
/// over trailing backslashes, `#` comments cut) and inline code spans, each
/// from the word after `sdft` on, with its line number.
fn commands(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let (n, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
            let code = line.split(" #").next().unwrap_or("");
            joined.push_str(code.trim_end_matches('\\'));
            joined.push(' ');
            if code.trim_end().ends_with('\\') {
                pending = Some((n, joined));
            } else {
                out.extend(sdft_calls(&joined).into_iter().map(|c| (n, c)));
            }
            continue;
        }
        for (k, span) in line.split('`').enumerate() {
            if k % 2 == 1 {
                out.extend(sdft_calls(span).into_iter().map(|c| (i + 1, c)));
            }
        }
    }
    out
}

/// The text after each `sdft ` that starts a command (at the start, after a
/// space, `/`, `(` or `=`), up to a pipe, `;` or `&&`.
fn sdft_calls(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("sdft ") {
        let before = rest[..at].chars().last();
        let after = &rest[at + 5..];
        if before.is_none_or(|c| matches!(c, ' ' | '/' | '(' | '=' | '$')) {
            let end = after.find(['|', ';', '&']).unwrap_or(after.len());
            out.push(after[..end].to_string());
        }
        rest = after;
    }
    out
}

/// Checks one documented command line against the binary's help: its
/// subcommand path, then every `--flag` after it. Returns the problems.
fn check(call: &str, all: &BTreeMap<Vec<String>, Help>) -> Vec<String> {
    let words: Vec<&str> = call.split_whitespace().collect();
    let mut path: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    for w in &words {
        let mut next = path.clone();
        next.push(w.to_string());
        if all.contains_key(&next) {
            path = next;
            continue;
        }
        // A word where a subcommand is required (the group has subcommands and
        // none was matched yet) is a subcommand the binary lacks.
        let h = &all[&path];
        let is_word = w.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        if !h.subcommands.is_empty() && is_word && !w.starts_with('-') && path.len() < 2 {
            problems.push(format!("`sdft {}`: no such subcommand", next.join(" ")));
            return problems;
        }
        break;
    }
    // `sdft ... --flag` (no subcommand named): nothing to check the flags against.
    if path.is_empty() {
        return problems;
    }
    let h = &all[&path];
    for w in &words[path.len()..] {
        let Some(flag) = w.strip_prefix("--") else {
            continue;
        };
        let flag = flag
            .split('=')
            .next()
            .unwrap()
            .trim_end_matches([',', '.', ')']);
        if flag.is_empty() || !flag.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            continue;
        }
        if !h.flags.contains(flag) {
            problems.push(format!("`sdft {}`: no flag --{flag}", path.join(" ")));
        }
    }
    problems
}

#[test]
fn every_documented_command_and_flag_exists_and_every_command_is_documented() {
    let all = all_help();
    let mut problems = Vec::new();
    let mut documented: BTreeSet<Vec<String>> = BTreeSet::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (line, call) in commands(&text) {
            for p in check(&call, &all) {
                problems.push(format!("{name}:{line}: {p}"));
            }
            // Every prefix of a documented path counts as documented.
            let words: Vec<String> = call.split_whitespace().map(str::to_string).collect();
            for n in 1..=words.len() {
                if all.contains_key(&words[..n]) {
                    documented.insert(words[..n].to_vec());
                }
            }
        }
    }
    for path in all.keys().filter(|p| !p.is_empty()) {
        if !documented.contains(path) {
            problems.push(format!(
                "`sdft {}` is in --help but no README.md or docs/*.md command names it",
                path.join(" ")
            ));
        }
    }
    for (path, h) in &all {
        for u in &h.undescribed {
            problems.push(format!("`sdft {}`: {u} has no help text", path.join(" ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker itself catches a flag and a subcommand that do not exist.
#[test]
fn the_check_fails_on_a_bogus_flag_and_subcommand() {
    let all = all_help();
    assert!(check("eval run --model M --output O", &all).is_empty());
    assert_eq!(
        check("eval run --model M --no-such-flag 3", &all),
        ["`sdft eval run`: no flag --no-such-flag"]
    );
    assert_eq!(
        check("eval frobnicate --model M", &all),
        ["`sdft eval frobnicate`: no such subcommand"]
    );
    // A flag whose help is empty or only its default is caught.
    let h = parse_help(
        "Options:\n      --a <A>\n          \n      --b  B help\n      --c <C>\n          [default: 8]\n  -h, --help  Print help\n",
    );
    assert_eq!(h.undescribed, ["--a <A>", "--c <C>"]);
    assert!(h.flags.contains("b") && h.flags.contains("help"));
    let calls = commands("text `sdft data inspect --rows 2 FILE`\n```sh\nsdft train --model M \\\n  --bogus 1   # --not-this\n```\n");
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(check(&calls[1].1, &all), ["`sdft train`: no flag --bogus"]);
}
