//! Writing GGUF files: metadata and f32/f16 tensors, version 3, 32-byte
//! alignment (what llama.cpp's `gguf-py` writer produces), written atomically.

use std::path::Path;

use super::DEFAULT_ALIGNMENT;
use crate::{Error, Result};

/// The data of one tensor.
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
}

impl TensorData {
    fn type_id(&self) -> u32 {
        match self {
            TensorData::F32(_) => 0,
            TensorData::F16(_) => 1,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A GGUF file under construction.
#[derive(Default)]
pub struct GgufWriter {
    kv: Vec<u8>,
    n_kv: u64,
    /// Name, `ne` (GGML order: the fastest-varying dimension first), data.
    tensors: Vec<(String, Vec<u64>, TensorData)>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, key: &str, type_id: u32) {
        put_str(&mut self.kv, key);
        self.kv.extend(type_id.to_le_bytes());
        self.n_kv += 1;
    }

    pub fn string(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key, 8);
        put_str(&mut self.kv, value);
        self
    }

    pub fn u32(&mut self, key: &str, value: u32) -> &mut Self {
        self.key(key, 4);
        self.kv.extend(value.to_le_bytes());
        self
    }

    pub fn f32(&mut self, key: &str, value: f32) -> &mut Self {
        self.key(key, 6);
        self.kv.extend(value.to_le_bytes());
        self
    }

    /// Adds a tensor of PyTorch shape `[rows, cols]` (row-major data); GGUF
    /// stores it as `ne = [cols, rows]`.
    pub fn matrix(&mut self, name: &str, rows: usize, cols: usize, data: TensorData) -> &mut Self {
        self.tensors
            .push((name.to_string(), vec![cols as u64, rows as u64], data));
        self
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let align = |n: usize| n.div_ceil(DEFAULT_ALIGNMENT as usize) * DEFAULT_ALIGNMENT as usize;
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        let blobs: Vec<Vec<u8>> = self.tensors.iter().map(|t| t.2.bytes()).collect();
        let mut offset = 0usize;
        for ((name, ne, data), blob) in self.tensors.iter().zip(&blobs) {
            put_str(&mut out, name);
            out.extend((ne.len() as u32).to_le_bytes());
            for d in ne {
                out.extend(d.to_le_bytes());
            }
            out.extend(data.type_id().to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            offset = align(offset + blob.len());
        }
        out.resize(align(out.len()), 0);
        for blob in &blobs {
            out.extend(blob);
            out.resize(align(out.len()), 0);
        }
        out
    }

    /// Writes the file to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        sdft_core::provenance::write_atomic(path, &self.to_bytes()).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            message: format!("writing GGUF: {e}"),
        })
    }
}
