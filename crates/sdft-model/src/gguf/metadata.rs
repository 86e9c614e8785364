//! GGUF metadata: typed key/value pairs ([`Metadata`], [`MetadataValue`],
//! [`MetadataArray`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One metadata value. Arrays are stored per element type ([`MetadataArray`]) so
/// that large ones (a 150k-entry vocabulary) stay compact.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(MetadataArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A metadata array; all elements share one type (possibly nested arrays).
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<MetadataArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl MetadataValue {
    /// The GGUF name of the value's type (`"u32"`, `"string"`, `"array<f32>"`, ...).
    pub fn type_name(&self) -> String {
        match self {
            MetadataValue::U8(_) => "u8".into(),
            MetadataValue::I8(_) => "i8".into(),
            MetadataValue::U16(_) => "u16".into(),
            MetadataValue::I16(_) => "i16".into(),
            MetadataValue::U32(_) => "u32".into(),
            MetadataValue::I32(_) => "i32".into(),
            MetadataValue::F32(_) => "f32".into(),
            MetadataValue::Bool(_) => "bool".into(),
            MetadataValue::String(_) => "string".into(),
            MetadataValue::Array(a) => format!("array<{}>", a.element_type_name()),
            MetadataValue::U64(_) => "u64".into(),
            MetadataValue::I64(_) => "i64".into(),
            MetadataValue::F64(_) => "f64".into(),
        }
    }

    /// The value as an integer, whatever its integer width (`None` for non-integers).
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            MetadataValue::U8(v) => v.into(),
            MetadataValue::I8(v) => v.into(),
            MetadataValue::U16(v) => v.into(),
            MetadataValue::I16(v) => v.into(),
            MetadataValue::U32(v) => v.into(),
            MetadataValue::I32(v) => v.into(),
            MetadataValue::U64(v) => v.into(),
            MetadataValue::I64(v) => v.into(),
            _ => return None,
        })
    }
}

impl MetadataArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            MetadataArray::U8(v) => v.len(),
            MetadataArray::I8(v) => v.len(),
            MetadataArray::U16(v) => v.len(),
            MetadataArray::I16(v) => v.len(),
            MetadataArray::U32(v) => v.len(),
            MetadataArray::I32(v) => v.len(),
            MetadataArray::F32(v) => v.len(),
            MetadataArray::Bool(v) => v.len(),
            MetadataArray::String(v) => v.len(),
            MetadataArray::Array(v) => v.len(),
            MetadataArray::U64(v) => v.len(),
            MetadataArray::I64(v) => v.len(),
            MetadataArray::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The GGUF name of the element type.
    pub fn element_type_name(&self) -> &'static str {
        match self {
            MetadataArray::U8(_) => "u8",
            MetadataArray::I8(_) => "i8",
            MetadataArray::U16(_) => "u16",
            MetadataArray::I16(_) => "i16",
            MetadataArray::U32(_) => "u32",
            MetadataArray::I32(_) => "i32",
            MetadataArray::F32(_) => "f32",
            MetadataArray::Bool(_) => "bool",
            MetadataArray::String(_) => "string",
            MetadataArray::Array(_) => "array",
            MetadataArray::U64(_) => "u64",
            MetadataArray::I64(_) => "i64",
            MetadataArray::F64(_) => "f64",
        }
    }

    /// The elements as i64 if the array holds integers that fit (any width).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        fn conv<T: Copy>(v: &[T], f: impl Fn(T) -> Option<i64>) -> Option<Vec<i64>> {
            v.iter().map(|x| f(*x)).collect()
        }
        match self {
            MetadataArray::U8(v) => conv(v, |x| Some(x.into())),
            MetadataArray::I8(v) => conv(v, |x| Some(x.into())),
            MetadataArray::U16(v) => conv(v, |x| Some(x.into())),
            MetadataArray::I16(v) => conv(v, |x| Some(x.into())),
            MetadataArray::U32(v) => conv(v, |x| Some(x.into())),
            MetadataArray::I32(v) => conv(v, |x| Some(x.into())),
            MetadataArray::U64(v) => conv(v, |x| i64::try_from(x).ok()),
            MetadataArray::I64(v) => Some(v.clone()),
            _ => None,
        }
    }
}

/// The metadata key/value pairs of a GGUF file, in file order, with typed accessors.
///
/// Accessors named `get_*` return `Ok(None)` for a missing key and an error naming
/// the file, the key, the expected and the found type when the key holds another
/// type; `require_*` also fail on a missing key. Integer accessors accept any
/// integer width whose value fits.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    path: PathBuf,
    entries: Vec<(String, MetadataValue)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// An empty metadata set for the file `path` (used in error messages).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Metadata {
            path: path.into(),
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Adds a pair; fails if the key is already present.
    pub fn insert(&mut self, key: String, value: MetadataValue) -> Result<()> {
        if self.index.contains_key(&key) {
            return Err(Error::Format {
                path: self.path.clone(),
                message: format!("duplicate metadata key `{key}`"),
            });
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    /// The file the metadata came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of key/value pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &MetadataValue) -> Error {
        Error::Format {
            path: self.path.clone(),
            message: format!(
                "metadata key `{key}`: expected {expected}, found {}",
                found.type_name()
            ),
        }
    }

    fn missing(&self, key: &str, expected: &str) -> Error {
        Error::Format {
            path: self.path.clone(),
            message: format!("missing metadata key `{key}` ({expected})"),
        }
    }

    fn get_int<T: TryFrom<i128>>(&self, key: &str, expected: &str) -> Result<Option<T>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let n = v
            .as_i128()
            .ok_or_else(|| self.wrong_type(key, expected, v))?;
        T::try_from(n).map(Some).map_err(|_| Error::Format {
            path: self.path.clone(),
            message: format!("metadata key `{key}`: value {n} does not fit {expected}"),
        })
    }

    /// An integer value as u32.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>> {
        self.get_int(key, "u32")
    }

    /// An integer value as u64.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        self.get_int(key, "u64")
    }

    /// An integer value as i64.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>> {
        self.get_int(key, "i64")
    }

    /// An integer value as usize.
    pub fn get_usize(&self, key: &str) -> Result<Option<usize>> {
        self.get_int(key, "usize")
    }

    /// A float value (f32, or f64 rounded to f32).
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>> {
        self.get_f64(key).map(|v| v.map(|x| x as f32))
    }

    /// A float value (f32 widened, or f64).
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::F32(x)) => Ok(Some(f64::from(*x))),
            Some(MetadataValue::F64(x)) => Ok(Some(*x)),
            Some(v) => Err(self.wrong_type(key, "f32 or f64", v)),
        }
    }

    /// A bool value.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "bool", v)),
        }
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, "string", v)),
        }
    }

    /// An array value of any element type.
    pub fn get_array(&self, key: &str) -> Result<Option<&MetadataArray>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.wrong_type(key, "array", v)),
        }
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Option<&[String]>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::Array(MetadataArray::String(a))) => Ok(Some(a)),
            Some(v) => Err(self.wrong_type(key, "array<string>", v)),
        }
    }

    /// An array of f32.
    pub fn get_f32_array(&self, key: &str) -> Result<Option<&[f32]>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::Array(MetadataArray::F32(a))) => Ok(Some(a)),
            Some(v) => Err(self.wrong_type(key, "array<f32>", v)),
        }
    }

    /// An array of integers (any width) as i64.
    pub fn get_int_array(&self, key: &str) -> Result<Option<Vec<i64>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ MetadataValue::Array(a)) => a
                .to_i64_vec()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "array of integers", v)),
            Some(v) => Err(self.wrong_type(key, "array of integers", v)),
        }
    }

    /// Like [`Metadata::get_u32`], failing on a missing key.
    pub fn require_u32(&self, key: &str) -> Result<u32> {
        self.get_u32(key)?.ok_or_else(|| self.missing(key, "u32"))
    }

    /// Like [`Metadata::get_u64`], failing on a missing key.
    pub fn require_u64(&self, key: &str) -> Result<u64> {
        self.get_u64(key)?.ok_or_else(|| self.missing(key, "u64"))
    }

    /// Like [`Metadata::get_f32`], failing on a missing key.
    pub fn require_f32(&self, key: &str) -> Result<f32> {
        self.get_f32(key)?.ok_or_else(|| self.missing(key, "f32"))
    }

    /// Like [`Metadata::get_str`], failing on a missing key.
    pub fn require_str(&self, key: &str) -> Result<&str> {
        self.get_str(key)?
            .ok_or_else(|| self.missing(key, "string"))
    }

    /// Like [`Metadata::get_str_array`], failing on a missing key.
    pub fn require_str_array(&self, key: &str) -> Result<&[String]> {
        self.get_str_array(key)?
            .ok_or_else(|| self.missing(key, "array<string>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        let mut m = Metadata::new("x.gguf");
        m.insert("a.u8".into(), MetadataValue::U8(7)).unwrap();
        m.insert("a.i32".into(), MetadataValue::I32(-3)).unwrap();
        m.insert("a.f32".into(), MetadataValue::F32(0.5)).unwrap();
        m.insert("a.s".into(), MetadataValue::String("hi".into()))
            .unwrap();
        m.insert(
            "a.arr".into(),
            MetadataValue::Array(MetadataArray::String(vec!["x".into()])),
        )
        .unwrap();
        m
    }

    #[test]
    fn typed_access() {
        let m = sample();
        assert_eq!(m.get_u32("a.u8").unwrap(), Some(7));
        assert_eq!(m.get_i64("a.i32").unwrap(), Some(-3));
        assert!(m.get_u32("a.i32").is_err());
        assert_eq!(m.get_f32("a.f32").unwrap(), Some(0.5));
        assert_eq!(m.get_str("a.s").unwrap(), Some("hi"));
        assert_eq!(m.get_str_array("a.arr").unwrap().unwrap().len(), 1);
        assert_eq!(m.get_u32("nope").unwrap(), None);
        let err = m.require_u32("nope").unwrap_err().to_string();
        assert!(err.contains("x.gguf") && err.contains("nope"), "{err}");
        let err = m.get_str("a.u8").unwrap_err().to_string();
        assert!(err.contains("expected string, found u8"), "{err}");
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let mut m = sample();
        assert!(m.insert("a.u8".into(), MetadataValue::U8(1)).is_err());
    }
}
