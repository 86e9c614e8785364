//! Hugging Face `save_to_disk` data files: Arrow IPC streams, read with the arrow
//! crate's IPC reader into one JSON object per row (strings, booleans, integers,
//! lists and structs: what the benchmarks' schemas use).

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, Int32Type, Int64Type, Int8Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// One row as a JSON object, keyed by column name.
pub type Row = Map<String, Value>;

/// Every row of the Arrow IPC stream at `path`, in file order. A file that is not
/// a whole Arrow stream (truncated, corrupted, another format) or holds a column
/// type this reader does not convert is an error naming the file.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_rows_from(path, &bytes)
}

/// [`read_rows`] over bytes already read (`path` names them in errors).
pub fn read_rows_from(path: &Path, bytes: &[u8]) -> Result<Vec<Row>> {
    let bad = |what: String| {
        Error::file(
            path,
            format!(
                "not a readable Arrow IPC stream (Hugging Face `save_to_disk` data file): {what}"
            ),
        )
    };
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| bad(format!("schema: {e}")))?;
    let mut rows = Vec::new();
    let mut batches = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| bad(format!("record batch {}: {e}", batches + 1)))?;
        batches += 1;
        append_rows(path, &batch, &mut rows)?;
    }
    if batches == 0 {
        return Err(bad("no record batches".into()));
    }
    Ok(rows)
}

fn append_rows(path: &Path, batch: &RecordBatch, rows: &mut Vec<Row>) -> Result<()> {
    let schema = batch.schema();
    let start = rows.len();
    rows.extend((0..batch.num_rows()).map(|_| Row::new()));
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        for i in 0..batch.num_rows() {
            let v = value(col.as_ref(), i).map_err(|t| {
                Error::file(
                    path,
                    format!("column `{}`: unsupported Arrow type {t}", field.name()),
                )
            })?;
            rows[start + i].insert(field.name().clone(), v);
        }
    }
    Ok(())
}

/// The value at row `i` of `a`; `Err(type)` for a type not converted.
fn value(a: &dyn Array, i: usize) -> std::result::Result<Value, DataType> {
    if a.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match a.data_type() {
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_string()),
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).into(),
        DataType::List(_) => list(a.as_list::<i32>().value(i).as_ref())?,
        DataType::LargeList(_) => list(a.as_list::<i64>().value(i).as_ref())?,
        DataType::Struct(_) => {
            let s = a.as_struct();
            let mut m = Map::new();
            for (name, col) in s.column_names().iter().zip(s.columns()) {
                m.insert(name.to_string(), value(col.as_ref(), i)?);
            }
            Value::Object(m)
        }
        other => return Err(other.clone()),
    })
}

fn list(items: &dyn Array) -> std::result::Result<Value, DataType> {
    (0..items.len())
        .map(|j| value(items, j))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Value::Array)
}
