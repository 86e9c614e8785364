//! Parquet through arrow: the example schema, a lossless writer, and a reader for
//! any Parquet file.
//!
//! ## The example schema (`sdft.schema = "example/v1"` in the file metadata)
//!
//! | column | arrow type | nullable |
//! | --- | --- | --- |
//! | `id` | `Utf8` | no |
//! | `system` | `Utf8` | yes (absent system) |
//! | `instruction` | `Utf8` | no |
//! | `input` | `Utf8` | yes (absent input; `""` stays `""`) |
//! | `output` | `Utf8` | no |
//! | `history` | `List<Struct<user: Utf8, assistant: Utf8>>` | no (empty list) |
//!
//! Files are Snappy-compressed (what pandas and HF `datasets` write by default) and
//! written atomically: to a temporary file beside the target, then renamed.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sdft_core::{Example, Turn};
use serde_json::{Map, Number, Value};

use crate::{atomic, Error, Result};

/// Metadata key and value that mark a file written with the example schema.
pub const SCHEMA_KEY: &str = "sdft.schema";
pub const SCHEMA_VERSION: &str = "example/v1";

fn turn_fields() -> Fields {
    Fields::from(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("assistant", DataType::Utf8, false),
    ])
}

/// The arrow schema of the example table (see the module docs).
pub fn example_schema() -> SchemaRef {
    let item = history_item_field();
    Arc::new(
        Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("system", DataType::Utf8, true),
            Field::new("instruction", DataType::Utf8, false),
            Field::new("input", DataType::Utf8, true),
            Field::new("output", DataType::Utf8, false),
            Field::new("history", DataType::List(item), false),
        ])
        .with_metadata([(SCHEMA_KEY, SCHEMA_VERSION)]),
    )
}

/// The examples as one arrow record batch in the example schema.
pub fn examples_to_batch(examples: &[Example]) -> std::result::Result<RecordBatch, String> {
    let strings = |f: &dyn Fn(&Example) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(examples.iter().map(f)))
    };
    let opt_strings = |f: &dyn Fn(&Example) -> Option<&str>| -> ArrayRef {
        Arc::new(examples.iter().map(f).collect::<StringArray>())
    };
    let schema = example_schema();
    let history = history_array(examples.iter().map(|e| e.history.as_slice()))?;
    RecordBatch::try_new(
        schema,
        vec![
            strings(&|e| &e.id),
            opt_strings(&|e| e.system.as_deref()),
            strings(&|e| &e.instruction),
            opt_strings(&|e| e.input.as_deref()),
            strings(&|e| &e.output),
            Arc::new(history),
        ],
    )
    .map_err(|e| e.to_string())
}

/// The history list field: `List<Struct<user, assistant>>` (see the module docs).
fn history_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(turn_fields()), false))
}

/// Multi-turn histories as one `List<Struct<user, assistant>>` array.
fn history_array<'a>(
    histories: impl Iterator<Item = &'a [Turn]> + Clone,
) -> std::result::Result<ListArray, String> {
    let turns = histories.clone().flatten();
    let users = StringArray::from_iter_values(turns.clone().map(|t| t.user.as_str()));
    let assistants = StringArray::from_iter_values(turns.map(|t| t.assistant.as_str()));
    let items = StructArray::try_new(
        turn_fields(),
        vec![Arc::new(users) as ArrayRef, Arc::new(assistants)],
        None,
    )
    .map_err(|e| e.to_string())?;
    ListArray::try_new(
        history_item_field(),
        OffsetBuffer::from_lengths(histories.map(<[Turn]>::len)),
        Arc::new(items),
        None,
    )
    .map_err(|e| e.to_string())
}

/// Writes record batches to a Parquet file atomically (Snappy compression).
pub fn write_batches(path: &Path, schema: SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let perr = |e: &dyn std::fmt::Display| Error::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    atomic::write_with(path, |file| {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer =
            ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| perr(&e))?;
        for batch in batches {
            writer.write(batch).map_err(|e| perr(&e))?;
        }
        writer.close().map_err(|e| perr(&e))?;
        Ok(())
    })
}

/// Writes examples to a Parquet file in the example schema, atomically.
pub fn write_examples(path: &Path, examples: &[Example]) -> Result<()> {
    let batch = examples_to_batch(examples).map_err(|message| Error::Parquet {
        path: path.to_path_buf(),
        message,
    })?;
    write_batches(path, example_schema(), &[batch])
}

/// One row read from Parquet: column name to value.
type Row = Map<String, Value>;

/// Reads any Parquet file as its column names and rows (column name to value), for
/// [`crate::read_records`]. Columns of types that have no JSON counterpart here
/// (binary, temporal, dictionary, ...) are left out with a warning.
pub(crate) fn read_rows(path: &Path) -> Result<(Vec<String>, Vec<Row>)> {
    let perr = |e: &dyn std::fmt::Display| Error::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(Error::Empty {
            path: path.to_path_buf(),
            expected: "a Parquet file",
        });
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(&e))?;
    let schema = builder.schema().clone();
    let usable: Vec<(usize, String)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            if supported(f.data_type()) {
                Some((i, f.name().clone()))
            } else {
                tracing::warn!(
                    path = %path.display(),
                    column = %f.name(),
                    data_type = %f.data_type(),
                    "column left out: its type has no text/number/list counterpart"
                );
                None
            }
        })
        .collect();
    let reader = builder.build().map_err(|e| perr(&e))?;
    let columns = usable.iter().map(|(_, n)| n.clone()).collect();
    let mut rows: Vec<Row> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| perr(&e))?;
        let start = rows.len();
        rows.extend((0..batch.num_rows()).map(|_| Map::new()));
        for (i, name) in &usable {
            let col = batch.column(*i);
            for r in 0..batch.num_rows() {
                let v = to_json(col.as_ref(), r);
                if let Some(row) = rows.get_mut(start + r) {
                    row.insert(name.clone(), v);
                }
            }
        }
    }
    Ok((columns, rows))
}

fn supported(dt: &DataType) -> bool {
    match dt {
        DataType::Null
        | DataType::Boolean
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64 => true,
        DataType::List(f) | DataType::LargeList(f) => supported(f.data_type()),
        DataType::Struct(fields) => fields.iter().all(|f| supported(f.data_type())),
        _ => false,
    }
}

fn float(x: f64) -> Value {
    Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// One cell as JSON (only for types where [`supported`] holds).
fn to_json(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(a.as_string_view().value(i).to_string()),
        DataType::Int8 => Value::from(a.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => Value::from(a.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => Value::from(a.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::from(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Value::from(a.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => Value::from(a.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => Value::from(a.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => Value::from(a.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => float(a.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(i)),
        DataType::List(_) => list(a.as_list::<i32>().value(i).as_ref()),
        DataType::LargeList(_) => list(a.as_list::<i64>().value(i).as_ref()),
        DataType::Struct(_) => {
            let s = a.as_struct();
            let mut m = Map::new();
            for (f, col) in s.fields().iter().zip(s.columns()) {
                m.insert(f.name().clone(), to_json(col.as_ref(), i));
            }
            Value::Object(m)
        }
        _ => Value::Null,
    }
}

fn list(values: &dyn Array) -> Value {
    Value::Array((0..values.len()).map(|j| to_json(values, j)).collect())
}

/// One column of a simple table for [`write_table`].
#[derive(Debug, Clone)]
pub enum Column {
    Str(Vec<String>),
    /// Nullable text (`None` is null).
    OptStr(Vec<Option<String>>),
    Int(Vec<i64>),
    /// Nullable integers (`None` is null).
    OptInt(Vec<Option<i64>>),
    /// Nullable floats (`None` is null).
    Float(Vec<Option<f64>>),
    Bool(Vec<bool>),
    /// Multi-turn histories, in the example schema's `history` layout.
    Turns(Vec<Vec<Turn>>),
}

/// Writes a table of named text/integer/boolean columns (all of one length) to
/// Parquet, atomically. Used for stage outputs such as generations.
pub fn write_table(path: &Path, columns: Vec<(&str, Column)>) -> Result<()> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (name, col) in columns {
        let nullable = matches!(
            col,
            Column::OptStr(_) | Column::OptInt(_) | Column::Float(_)
        );
        let (dt, arr): (DataType, ArrayRef) = match col {
            Column::Str(v) => (DataType::Utf8, Arc::new(StringArray::from(v))),
            Column::OptStr(v) => (DataType::Utf8, Arc::new(StringArray::from(v))),
            Column::Int(v) => (DataType::Int64, Arc::new(arrow_array::Int64Array::from(v))),
            Column::OptInt(v) => (DataType::Int64, Arc::new(arrow_array::Int64Array::from(v))),
            Column::Float(v) => (
                DataType::Float64,
                Arc::new(arrow_array::Float64Array::from(v)),
            ),
            Column::Bool(v) => (
                DataType::Boolean,
                Arc::new(arrow_array::BooleanArray::from(v)),
            ),
            Column::Turns(v) => {
                let arr = history_array(v.iter().map(Vec::as_slice)).map_err(|message| {
                    Error::Parquet {
                        path: path.to_path_buf(),
                        message,
                    }
                })?;
                (arr.data_type().clone(), Arc::new(arr))
            }
        };
        fields.push(Field::new(name, dt, nullable));
        arrays.push(arr);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_batches(path, schema, &[batch])
}
