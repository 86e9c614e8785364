//! A bounds-checked little-endian reader over the bytes of a GGUF file.

use std::fmt::Display;
use std::path::Path;

use crate::{Error, Result};

/// Reads little-endian values from `data`, turning every out-of-bounds read into a
/// "truncated file" error naming the file, the item and the offset.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
}

macro_rules! read_le {
    ($($name:ident: $t:ty),* $(,)?) => {
        $(
            pub(crate) fn $name(&mut self, what: &dyn Display) -> Result<$t> {
                let bytes = self.take(std::mem::size_of::<$t>() as u64, what)?;
                let mut buf = [0u8; std::mem::size_of::<$t>()];
                buf.copy_from_slice(bytes);
                Ok(<$t>::from_le_bytes(buf))
            }
        )*
    };
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8], path: &'a Path) -> Self {
        Cursor { data, pos: 0, path }
    }

    /// Current offset from the start of the file.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current offset.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// A format error for this file.
    pub(crate) fn error(&self, message: impl Into<String>) -> Error {
        Error::Format {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: u64, what: &dyn Display) -> Result<&'a [u8]> {
        let n_usize = usize::try_from(n).ok().filter(|&n| n <= self.remaining());
        let Some(n) = n_usize else {
            return Err(self.error(format!(
                "truncated file: {what} needs {n} bytes at offset {}, but the file has {} bytes",
                self.pos,
                self.data.len()
            )));
        };
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    read_le!(u8: u8, i8: i8, u16: u16, i16: i16, u32: u32, i32: i32, u64: u64, i64: i64,
        f32: f32, f64: f64);

    /// A GGUF string: u64 length then UTF-8 bytes (invalid UTF-8 is replaced by
    /// U+FFFD rather than rejected, as llama.cpp does not validate either).
    pub(crate) fn string(&mut self, what: &dyn Display) -> Result<String> {
        let len = self.u64(&format_args!("length of {what}"))?;
        let bytes = self.take(len, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// Fails unless `count` items of at least `min_size` bytes each can still fit in
    /// the file; called before allocating room for `count` items.
    pub(crate) fn check_count(
        &self,
        count: u64,
        min_size: u64,
        what: &dyn Display,
    ) -> Result<usize> {
        let need = count.checked_mul(min_size);
        match need {
            Some(need) if need <= self.remaining() as u64 => Ok(count as usize),
            _ => Err(self.error(format!(
                "the header claims {count} {what}, which need at least {min_size} bytes each, \
                 but only {} bytes remain after offset {}",
                self.remaining(),
                self.pos
            ))),
        }
    }
}
