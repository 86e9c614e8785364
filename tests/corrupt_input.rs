//! Bad input gets a clear error naming the file, row and column; nothing panics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use sdft_data::{Dataset, Error, ReadOptions};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn err(path: &Path) -> String {
    Dataset::read(path, &ReadOptions::default())
        .map(|d| format!("no error; report: {:?}", d.report.dropped))
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn truncated_json_names_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.json",
        b"[{\"instruction\": \"a\", \"output\": \"b\"},\n {\"instruction\": \"c\", \"outp",
    );
    let e = err(&p);
    assert!(
        e.contains("t.json") && e.contains("invalid JSON") && e.contains("line 2"),
        "{e}"
    );
}

#[test]
fn jsonl_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.jsonl",
        b"{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\" \"output\": 1}\n",
    );
    let e = err(&p);
    assert!(e.contains("t.jsonl") && e.contains("line 2"), "{e}");
}

#[test]
fn wrong_types_drop_the_row_and_name_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "w.json",
        br#"[{"instruction": "ok", "output": "fine"},
            {"instruction": 42, "output": "x"},
            {"instruction": "y", "output": null},
            {"instruction": "z"},
            "not an object",
            {"instruction": "h", "output": "o", "history": [["only one"]]},
            {"instruction": "i", "input": ["list"], "output": "o"}]"#,
    );
    let d = Dataset::read(&p, &ReadOptions::default()).unwrap();
    assert_eq!(d.len(), 1);
    let issues: Vec<String> = d.report.dropped.iter().map(|i| i.to_string()).collect();
    assert_eq!(issues.len(), 6, "{issues:?}");
    assert_eq!(
        issues[0],
        "row 2, column `instruction`: expected a string, found a number"
    );
    assert_eq!(
        issues[1],
        "row 3, column `output`: expected a string, found null"
    );
    assert_eq!(
        issues[2],
        "row 4, column `output`: expected a string, found nothing (missing)"
    );
    assert_eq!(issues[3], "row 5: expected a JSON object, found a string");
    assert!(
        issues[4].starts_with(
            "row 6, column `history`: turn 1: expected a list of [user, assistant] pairs"
        ),
        "{}",
        issues[4]
    );
    assert_eq!(
        issues[5],
        "row 7, column `input`: expected a string or null, found an array"
    );
    // Strict mode fails and names the file and the first bad row.
    let e = Dataset::read(&p, &ReadOptions::default().strict(true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("w.json") && e.contains("6 of 7 rows") && e.contains("row 2"),
        "{e}"
    );
    // The summary groups reasons.
    assert_eq!(d.report.dropped_by_reason().len(), 6);
}

#[test]
fn missing_column_lists_what_the_file_has() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "m.json", br#"[{"text": "a", "label": "b"}]"#);
    let e = err(&p);
    assert!(
        e.contains("m.json")
            && e.contains("no column for `instruction`")
            && e.contains("[text, label]"),
        "{e}"
    );
    let p = write(
        dir.path(),
        "n.json",
        br#"[{"instruction": "a", "label": "b"}]"#,
    );
    let e = err(&p);
    assert!(e.contains("no column for `output`"), "{e}");
}

#[test]
fn empty_files_and_empty_arrays() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["e.json", "e.jsonl", "e.csv", "e.parquet"] {
        let p = write(dir.path(), name, b"");
        let e = err(&p);
        assert!(e.contains(name) && e.contains("empty"), "{e}");
    }
    let p = write(dir.path(), "w.json", b"  \n ");
    assert!(err(&p).contains("empty"));
    let p = write(dir.path(), "a.json", b"[]");
    assert!(err(&p).contains("no rows"));
    let p = write(dir.path(), "h.csv", b"instruction,output\n");
    assert!(err(&p).contains("no rows"));
}

#[test]
fn invalid_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(b"\", \"output\": \"c\"}\n");
    for name in ["u.jsonl", "u.csv"] {
        let p = write(dir.path(), name, &bytes);
        let e = err(&p);
        assert!(
            e.contains(name) && e.contains("invalid UTF-8 at line 2"),
            "{e}"
        );
    }
}

#[test]
fn ragged_csv_names_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "r.csv", b"instruction,output\na,b\nc,d,e\n");
    let e = err(&p);
    assert!(e.contains("r.csv") && e.contains("row 2"), "{e}");
}

#[test]
fn duplicate_ids_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.json",
        br#"[{"id": "a", "instruction": "1", "output": "1"}, {"id": "a", "instruction": "2", "output": "2"}, {"id": 3, "instruction": "3", "output": "3"}]"#,
    );
    let d = Dataset::read(&p, &ReadOptions::default()).unwrap();
    assert_eq!(
        d.examples.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["a", "3"]
    );
    assert_eq!(
        d.report.dropped[0].to_string(),
        "row 2, column `id`: expected a unique id, found `a` again (first at row 1)"
    );
}

#[test]
fn bad_chats_are_row_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "c.jsonl",
        br#"{"messages": [{"role": "assistant", "content": "I start?"}]}
{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
{"messages": [{"role": "robot", "content": "a"}]}
{"messages": "hello"}
{"messages": [{"role": "user"}]}
{"messages": [{"role": "user", "content": "fine"}, {"role": "assistant", "content": "ok"}]}
"#,
    );
    let d = Dataset::read(&p, &ReadOptions::default()).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d.report.dropped.len(), 5);
    assert!(d
        .report
        .dropped
        .iter()
        .all(|i| i.column.as_deref() == Some("messages")));
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_with_other_columns() {
    let dir = tempfile::tempdir().unwrap();
    // Extra columns (a score, a binary blob) are fine; well-known names map.
    let p = dir.path().join("extra.parquet");
    write_parquet(
        &p,
        vec![
            (
                "prompt",
                Arc::new(StringArray::from(vec!["Say hi", "Say bye"])) as ArrayRef,
            ),
            (
                "completion",
                Arc::new(StringArray::from(vec![Some("hi"), None])) as ArrayRef,
            ),
            ("score", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            (
                "blob",
                Arc::new(arrow_array::BinaryArray::from(vec![
                    b"x".as_ref(),
                    b"y".as_ref(),
                ])) as ArrayRef,
            ),
        ],
    );
    let d = Dataset::read(&p, &ReadOptions::default()).unwrap();
    assert_eq!(d.report.columns, ["prompt", "completion", "score"]);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d.report.dropped[0].to_string(),
        "row 2, column `completion`: expected a string, found null"
    );
    // A Parquet file with none of the needed columns.
    let q = dir.path().join("other.parquet");
    write_parquet(
        &q,
        vec![("foo", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)],
    );
    let e = err(&q);
    assert!(
        e.contains("other.parquet")
            && e.contains("no column for `instruction`")
            && e.contains("[foo]"),
        "{e}"
    );
    // A wrongly typed column names row and column.
    let r = dir.path().join("typed.parquet");
    write_parquet(
        &r,
        vec![
            (
                "instruction",
                Arc::new(Int64Array::from(vec![5])) as ArrayRef,
            ),
            ("output", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
        ],
    );
    let d = Dataset::read(&r, &ReadOptions::default()).unwrap();
    assert_eq!(
        d.report.dropped[0].to_string(),
        "row 1, column `instruction`: expected a string, found a number"
    );
    assert_eq!(DataType::Int64, DataType::Int64);
}

#[test]
fn garbage_and_truncated_parquet_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "g.parquet",
        b"this is not parquet at all, not even close",
    );
    let e = err(&p);
    assert!(e.contains("g.parquet") && e.contains("Parquet"), "{e}");
    // A real file cut in half.
    let good = dir.path().join("good.parquet");
    let ex = vec![sdft_core::Example::new("a", "b").with_id("1")];
    sdft_data::write_examples(&good, &ex, None).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = write(dir.path(), "cut.parquet", &bytes[..bytes.len() / 2]);
    let e = err(&cut);
    assert!(e.contains("cut.parquet") && e.contains("Parquet"), "{e}");
}

#[test]
fn missing_files_and_unknown_formats() {
    let e = err(Path::new("/nonexistent/data.json"));
    assert!(e.contains("/nonexistent/data.json"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "data.xlsx", b"PK");
    assert!(matches!(
        Dataset::read(&p, &ReadOptions::default()),
        Err(Error::UnknownFormat { .. })
    ));
}
