//! Parsing of the GGUF header, metadata and tensor infos, with every count, length
//! and offset checked against the file size before it is used.

use std::collections::HashMap;
use std::path::Path;

use super::cursor::Cursor;
use super::metadata::{Metadata, MetadataArray, MetadataValue};
use super::tensor::TensorInfo;
use super::types::GgmlType;
use crate::{Error, Result};

/// The four magic bytes at the start of every GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a ggml tensor can have.
pub const MAX_DIMS: usize = 4;
/// Deepest nesting of arrays inside metadata arrays that is accepted.
const MAX_ARRAY_DEPTH: usize = 8;

/// Everything in a GGUF file before the tensor data.
pub(crate) struct Header {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
}

/// Smallest encoding of a value of GGUF value type `t` (for count checks).
fn min_value_size(t: u32) -> u64 {
    match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => 1,
    }
}

fn read_value(cur: &mut Cursor<'_>, vtype: u32, key: &str, depth: usize) -> Result<MetadataValue> {
    let what = format!("value of metadata key `{key}`");
    Ok(match vtype {
        0 => MetadataValue::U8(cur.u8(&what)?),
        1 => MetadataValue::I8(cur.i8(&what)?),
        2 => MetadataValue::U16(cur.u16(&what)?),
        3 => MetadataValue::I16(cur.i16(&what)?),
        4 => MetadataValue::U32(cur.u32(&what)?),
        5 => MetadataValue::I32(cur.i32(&what)?),
        6 => MetadataValue::F32(cur.f32(&what)?),
        7 => MetadataValue::Bool(cur.u8(&what)? != 0),
        8 => MetadataValue::String(cur.string(&what)?),
        9 => MetadataValue::Array(read_array(cur, key, depth)?),
        10 => MetadataValue::U64(cur.u64(&what)?),
        11 => MetadataValue::I64(cur.i64(&what)?),
        12 => MetadataValue::F64(cur.f64(&what)?),
        other => {
            return Err(cur.error(format!(
                "metadata key `{key}` has unknown value type {other} (expected 0..=12)"
            )))
        }
    })
}

fn read_vec<T>(
    cur: &mut Cursor<'_>,
    n: usize,
    mut f: impl FnMut(&mut Cursor<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    // `n` was checked against the bytes left; still, grow from a modest start so a
    // lying count costs at most what the elements actually read.
    let mut v = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        v.push(f(cur)?);
    }
    Ok(v)
}

fn read_array(cur: &mut Cursor<'_>, key: &str, depth: usize) -> Result<MetadataArray> {
    if depth >= MAX_ARRAY_DEPTH {
        return Err(cur.error(format!(
            "metadata key `{key}`: arrays nested deeper than {MAX_ARRAY_DEPTH} levels"
        )));
    }
    let what = format!("array of metadata key `{key}`");
    let etype = cur.u32(&what)?;
    let count = cur.u64(&what)?;
    if etype > 12 {
        return Err(cur.error(format!(
            "metadata key `{key}`: array has unknown element type {etype} (expected 0..=12)"
        )));
    }
    let items = format!("elements in the array of metadata key `{key}`");
    let n = cur.check_count(count, min_value_size(etype), &items)?;
    let w = &what;
    Ok(match etype {
        0 => MetadataArray::U8(cur.take(n as u64, w)?.to_vec()),
        1 => MetadataArray::I8(read_vec(cur, n, |c| c.i8(w))?),
        2 => MetadataArray::U16(read_vec(cur, n, |c| c.u16(w))?),
        3 => MetadataArray::I16(read_vec(cur, n, |c| c.i16(w))?),
        4 => MetadataArray::U32(read_vec(cur, n, |c| c.u32(w))?),
        5 => MetadataArray::I32(read_vec(cur, n, |c| c.i32(w))?),
        6 => MetadataArray::F32(read_vec(cur, n, |c| c.f32(w))?),
        7 => MetadataArray::Bool(read_vec(cur, n, |c| Ok(c.u8(w)? != 0))?),
        8 => MetadataArray::String(read_vec(cur, n, |c| c.string(w))?),
        9 => MetadataArray::Array(read_vec(cur, n, |c| read_array(c, key, depth + 1))?),
        10 => MetadataArray::U64(read_vec(cur, n, |c| c.u64(w))?),
        11 => MetadataArray::I64(read_vec(cur, n, |c| c.i64(w))?),
        _ => MetadataArray::F64(read_vec(cur, n, |c| c.f64(w))?),
    })
}

/// The header, version and counts; checks the magic and the version.
fn read_preamble(cur: &mut Cursor<'_>) -> Result<(u32, u64, u64)> {
    let magic = cur.take(4, &"the magic bytes")?;
    if magic != GGUF_MAGIC {
        return Err(cur.error(format!(
            "not a GGUF file: the magic bytes are {magic:02x?} ({:?}), expected \"GGUF\"",
            String::from_utf8_lossy(magic)
        )));
    }
    let version = cur.u32(&"the version")?;
    match version {
        2 | 3 => {}
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(cur.error("big-endian GGUF files are not supported"));
        }
        v => return Err(cur.error(format!("unsupported GGUF version {v} (supported: 2 and 3)"))),
    }
    let n_tensors = cur.u64(&"the tensor count")?;
    let n_kv = cur.u64(&"the metadata count")?;
    Ok((version, n_tensors, n_kv))
}

fn read_metadata(cur: &mut Cursor<'_>, path: &Path, n_kv: u64) -> Result<Metadata> {
    // Smallest pair: empty key (8) + value type (4) + a 1-byte value.
    let n = cur.check_count(n_kv, 13, &"metadata key/value pairs")?;
    let mut metadata = Metadata::new(path);
    for i in 0..n {
        let key = cur.string(&format_args!("key of metadata pair {i}"))?;
        let vtype = cur.u32(&format_args!("value type of metadata key `{key}`"))?;
        let value = read_value(cur, vtype, &key, 0)?;
        metadata.insert(key, value)?;
    }
    Ok(metadata)
}

fn tensor_error(path: &Path, tensor: &str, message: String) -> Error {
    Error::Tensor {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        message,
    }
}

fn read_tensor_info(cur: &mut Cursor<'_>, path: &Path, i: usize) -> Result<TensorInfo> {
    let name = cur.string(&format_args!("name of tensor {i}"))?;
    let what = format!("info of tensor `{name}`");
    let n_dims = cur.u32(&what)? as usize;
    if n_dims > MAX_DIMS {
        return Err(tensor_error(
            path,
            &name,
            format!("{n_dims} dimensions, at most {MAX_DIMS} are supported"),
        ));
    }
    let ne = read_vec(cur, n_dims, |c| c.u64(&what))?;
    let type_id = cur.u32(&what)?;
    let offset = cur.u64(&what)?;
    if let Some(d) = ne.iter().find(|&&d| d > i64::MAX as u64) {
        return Err(tensor_error(
            path,
            &name,
            format!("dimension {d} exceeds i64::MAX"),
        ));
    }
    let dtype = GgmlType::from_id(type_id)
        .ok_or_else(|| tensor_error(path, &name, format!("unknown ggml type id {type_id}")))?;
    let n_elements = ne
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| tensor_error(path, &name, format!("shape {ne:?} overflows")))?;
    let row = ne.first().copied().unwrap_or(1);
    if row % dtype.block_size() as u64 != 0 {
        return Err(tensor_error(
            path,
            &name,
            format!(
                "row length ne[0] = {row} (shape {ne:?}) is not a multiple of the {dtype} block size {}",
                dtype.block_size()
            ),
        ));
    }
    let n_bytes = dtype
        .bytes_for(n_elements)
        .map_err(|m| tensor_error(path, &name, m))?;
    Ok(TensorInfo::new(
        name, ne, dtype, offset, n_elements, n_bytes,
    ))
}

/// Checks that tensor data lies inside the file, is aligned and does not overlap.
fn check_layout(
    path: &Path,
    tensors: &[TensorInfo],
    data_offset: u64,
    alignment: u64,
    file_len: u64,
) -> Result<()> {
    for t in tensors {
        if t.offset() % alignment != 0 {
            return Err(tensor_error(
                path,
                t.name(),
                format!(
                    "data offset {} is not a multiple of the alignment {alignment}",
                    t.offset()
                ),
            ));
        }
        let start = data_offset.checked_add(t.offset());
        let end = start.and_then(|s| s.checked_add(t.n_bytes()));
        match (start, end) {
            (Some(_), Some(end)) if end <= file_len => {}
            _ => {
                return Err(tensor_error(
                    path,
                    t.name(),
                    format!(
                        "data ({} bytes of {} {:?}) at data offset {} (file offset {}) extends \
                         beyond the end of the file ({file_len} bytes)",
                        t.n_bytes(),
                        t.dtype(),
                        t.ne(),
                        t.offset(),
                        data_offset as u128 + t.offset() as u128
                    ),
                ))
            }
        }
    }
    let mut order: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes() > 0).collect();
    order.sort_by_key(|t| t.offset());
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.offset() + a.n_bytes() > b.offset() {
            return Err(tensor_error(
                path,
                a.name(),
                format!(
                    "byte length {} ({} {:?}) at data offset {} overlaps tensor `{}` at data offset {}",
                    a.n_bytes(),
                    a.dtype(),
                    a.ne(),
                    a.offset(),
                    b.name(),
                    b.offset()
                ),
            ));
        }
    }
    Ok(())
}

/// Parses everything before the tensor data of the GGUF file `data` (named `path`
/// in errors).
pub(crate) fn parse_header(path: &Path, data: &[u8]) -> Result<Header> {
    let mut cur = Cursor::new(data, path);
    let (version, n_tensors, n_kv) = read_preamble(&mut cur)?;
    let metadata = read_metadata(&mut cur, path, n_kv)?;

    // Smallest tensor info: empty name (8) + n_dims (4) + type (4) + offset (8).
    let n = cur.check_count(n_tensors, 24, &"tensor infos")?;
    let mut tensors = Vec::with_capacity(n.min(1 << 16));
    let mut names = HashMap::with_capacity(n.min(1 << 16));
    for i in 0..n {
        let t = read_tensor_info(&mut cur, path, i)?;
        if names.insert(t.name().to_string(), i).is_some() {
            return Err(tensor_error(path, t.name(), "duplicate tensor name".into()));
        }
        tensors.push(t);
    }

    let alignment = match metadata.get_u64("general.alignment")? {
        None => DEFAULT_ALIGNMENT,
        Some(a) if a.is_power_of_two() => a,
        Some(a) => return Err(cur.error(format!("general.alignment = {a} is not a power of two"))),
    };
    let data_offset = (cur.pos() as u64).div_ceil(alignment) * alignment;
    let file_len = data.len() as u64;
    if !tensors.is_empty() && data_offset > file_len {
        return Err(cur.error(format!(
            "truncated file: the data section starts at offset {data_offset}, but the file has {file_len} bytes"
        )));
    }
    check_layout(path, &tensors, data_offset, alignment, file_len)?;
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}
