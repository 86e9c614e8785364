//! The readers and writers on small files written by the tests: every format, the
//! column mapping, chat layouts, stable ids, and lossless round trips.

use std::path::{Path, PathBuf};

use sdft_core::{Example, Turn};
use sdft_data::{content_id, ColumnMap, Dataset, Field, Format, ReadOptions};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn read(path: &Path) -> Dataset {
    Dataset::read(path, &ReadOptions::default().strict(true)).unwrap()
}

fn tricky_examples() -> Vec<Example> {
    vec![
        Example::new("Übersetze: «naïve café» 🚀", "naive cafe — 東京\n\tdone")
            .with_id("u-1")
            .with_input(""),
        Example::new("Sum the list.", "6")
            .with_id("u-2")
            .with_input("[1, 2, 3]")
            .with_system("You add."),
        Example::new("And now?", "Still 6.")
            .with_id("u-3")
            .with_history(vec![
                Turn::new("Sum [1,2,3]", "6"),
                Turn::new("Double it", "12"),
            ]),
        Example::new("", "").with_id("u-4"),
    ]
}

#[test]
fn alpaca_json_and_jsonl_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let json = write(
        dir.path(),
        "a.json",
        r#"[{"instruction": "Name a color.", "input": "", "output": "Blue."},
            {"instruction": "Add.", "input": "2 and 2", "output": "4"}]"#,
    );
    let jsonl = write(
        dir.path(),
        "a.jsonl",
        "{\"instruction\": \"Name a color.\", \"input\": \"\", \"output\": \"Blue.\"}\n\n{\"instruction\": \"Add.\", \"input\": \"2 and 2\", \"output\": \"4\"}\n",
    );
    // JSON Lines saved with a .json extension (as HF `datasets` writes) also reads.
    let jsonl_as_json = write(
        dir.path(),
        "b.json",
        &std::fs::read_to_string(&jsonl).unwrap(),
    );
    let a = read(&json);
    assert_eq!(a.examples, read(&jsonl).examples);
    assert_eq!(a.examples, read(&jsonl_as_json).examples);
    assert_eq!(a.examples[1].query(), "Add.\n2 and 2");
    assert_eq!(a.examples[0].id, content_id(&a.examples[0]));
}

#[test]
fn chat_layouts_become_multi_turn_examples() {
    let dir = tempfile::tempdir().unwrap();
    let sharegpt = write(
        dir.path(),
        "s.jsonl",
        r#"{"id": 7, "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}, {"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}"#,
    );
    let d = read(&sharegpt);
    let ex = &d.examples[0];
    assert_eq!(ex.id, "7");
    assert_eq!(ex.system.as_deref(), Some("Be brief."));
    assert_eq!(ex.history, vec![Turn::new("Hi", "Hello.")]);
    assert_eq!((ex.instruction.as_str(), ex.output.as_str()), ("2+2?", "4"));

    let messages = write(
        dir.path(),
        "m.json",
        r#"[{"messages": [{"role": "user", "content": "Prompt only"}]}]"#,
    );
    let d = read(&messages);
    assert_eq!(
        d.examples[0].output, "",
        "a chat ending on a user turn is a prompt-only row"
    );
}

#[test]
fn csv_and_column_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "q.csv",
        "uid,prompt_text,gold,notes\nq1,\"What is 2, plus 2?\",4,x\nq2,\"Line one\nline two\",ok,y\n",
    );
    // `prompt_text`/`gold` are not well-known names: without a mapping it fails and
    // says which columns exist.
    let err = Dataset::read(&csv, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("q.csv") && err.contains("prompt_text, gold, notes"),
        "{err}"
    );
    let map =
        ColumnMap::parse_specs(&["uid=id", "prompt_text=instruction", "gold=output"]).unwrap();
    let d = Dataset::read(&csv, &ReadOptions::default().columns(map)).unwrap();
    assert_eq!(d.examples[0].id, "q1");
    assert_eq!(d.examples[0].instruction, "What is 2, plus 2?");
    assert_eq!(d.examples[1].instruction, "Line one\nline two");
    assert_eq!(d.report.mapping.output.as_deref(), Some("gold"));
    // An explicit mapping wins over a well-known name.
    let also = write(
        dir.path(),
        "r.json",
        r#"[{"question": "q", "answer": "a", "better": "b"}]"#,
    );
    let map = ColumnMap::new().with("better", Field::Output);
    let d = Dataset::read(&also, &ReadOptions::default().columns(map)).unwrap();
    assert_eq!(d.examples[0].output, "b");
    assert!(ColumnMap::parse_specs(&["a=nonsense"]).is_err());
    assert!(ColumnMap::parse_specs(&["noequals"]).is_err());
}

#[test]
fn content_ids_are_stable_across_formats_and_disambiguate_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let json = write(
        dir.path(),
        "d.json",
        r#"[{"instruction": "Same", "output": "row"}, {"instruction": "Same", "output": "row"}, {"instruction": "Other", "output": "row"}]"#,
    );
    let csv = write(
        dir.path(),
        "d.csv",
        "instruction,output\nSame,row\nSame,row\nOther,row\n",
    );
    let a = read(&json);
    let b = read(&csv);
    let ids: Vec<&str> = a.examples.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        b.examples.iter().map(|e| e.id.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(ids[1], format!("{}-2", ids[0]));
    assert_ne!(ids[0], ids[2]);
    // The documented recipe: sha256 of the canonical JSON array, first 16 hex digits.
    assert_eq!(ids[0], content_id(&Example::new("Same", "row")));
    assert_eq!(ids[0].len(), 16);
}

#[test]
fn parquet_round_trip_is_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.parquet");
    let examples = tricky_examples();
    sdft_data::write_examples(&path, &examples, None).unwrap();
    let back = read(&path);
    assert_eq!(back.examples, examples);
    assert_eq!(back.report.format, Format::Parquet);
    // None and Some("") stay distinct in Parquet.
    assert_eq!(back.examples[0].input.as_deref(), Some(""));
    assert_eq!(back.examples[2].input, None);
}

#[test]
fn json_and_jsonl_writers_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let examples = tricky_examples();
    for name in ["x.json", "x.jsonl"] {
        let path = dir.path().join(name);
        sdft_data::write_examples(&path, &examples, None).unwrap();
        assert_eq!(read(&path).examples, examples, "{name}");
    }
    // CSV cannot hold history: the writer says which example.
    let err = sdft_data::write_examples(&dir.path().join("x.csv"), &examples, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("u-3") && err.contains("multi-turn"), "{err}");
    let single: Vec<Example> = examples
        .into_iter()
        .filter(|e| !e.is_multi_turn())
        .collect();
    let csv = dir.path().join("y.csv");
    sdft_data::write_examples(&csv, &single, None).unwrap();
    let back = read(&csv);
    assert_eq!(back.examples[1], single[1]);
    assert_eq!(back.examples[0].instruction, single[0].instruction);
}

#[test]
fn format_flag_overrides_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "data.txt", "instruction,output\nhi,there\n");
    assert!(Dataset::read(&p, &ReadOptions::default()).is_err());
    let d = Dataset::read(&p, &ReadOptions::default().format(Format::Csv)).unwrap();
    assert_eq!(d.examples[0].output, "there");
}
