//! [`GgufFile`]: a memory-mapped GGUF file with its metadata and tensors.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::dequant::dequantize;
use super::metadata::Metadata;
use super::parse::parse_header;
use super::tensor::TensorInfo;
use super::types::DEQUANT_TYPES;
use crate::{Error, Result};

/// A GGUF file (versions 2 and 3, little-endian), memory-mapped.
///
/// [`GgufFile::open`] parses and validates the whole header: every tensor's data
/// must lie inside the file, be aligned, have a whole number of blocks per row and
/// not overlap the next tensor. Tensor data is read lazily from the mapping.
///
/// Shapes: [`TensorInfo::ne`] is the ggml order (`ne[0]` contiguous);
/// [`GgufFile::tensor_f32`] reports the row-major (PyTorch) shape, `ne` reversed.
/// Data is returned exactly as stored: in particular llama.cpp's converter permutes
/// the rows of `attn_q`/`attn_k` for its RoPE layout, and that is not undone here.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl GgufFile {
    /// Opens, maps and parses the GGUF file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < 24 {
            return Err(Error::Format {
                path: path.to_path_buf(),
                message: format!(
                    "truncated file: {len} bytes is smaller than a GGUF header (24 bytes)"
                ),
            });
        }
        // SAFETY: the mapping is read-only; as with any mmap, the file must not be
        // truncated or rewritten by another process while it is open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let header = parse_header(path, &mmap)?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name().to_string(), i))
            .collect();
        Ok(GgufFile {
            path: path.to_path_buf(),
            mmap,
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            index,
            alignment: header.alignment,
            data_offset: header.data_offset,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The alignment of tensor data (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// File offset of the start of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The metadata key/value pairs.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// `general.architecture` (`"llama"`), if present.
    pub fn architecture(&self) -> Result<Option<&str>> {
        self.metadata.get_str("general.architecture")
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor named `name`, or a [`Error::MissingTensor`] error.
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            tensor: name.to_string(),
        })
    }

    /// The raw stored bytes of tensor `name` (whole blocks of its ggml type).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self.tensor_info(name)?;
        Ok(self.bytes_of(t))
    }

    /// Drops tensor `name`'s pages from the process's resident memory: a loader
    /// that has copied the tensor out calls it, so that the mapped file does
    /// not add its whole size to the load's peak memory. Pages read again come
    /// back from the file, unchanged. A no-op for an unknown name and off Unix.
    pub fn release(&self, name: &str) {
        let Some(info) = self.tensor(name) else {
            return;
        };
        let start = (self.data_offset + info.offset()) as usize;
        let len = (info.n_bytes() as usize).min(self.mmap.len().saturating_sub(start));
        #[cfg(unix)]
        // SAFETY: a read-only mapping of the file: MADV_DONTNEED discards the
        // pages, and any later read faults them in from the file again with the
        // same bytes, so no reference can observe a change.
        let _ = unsafe {
            self.mmap
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len)
        };
        #[cfg(not(unix))]
        let _ = (start, len);
    }

    /// The raw bytes of `info`, one of this file's tensors (whose bounds
    /// `parse_header` checked); empty if `info` came from elsewhere and does not fit.
    fn bytes_of(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + info.offset()) as usize;
        self.mmap
            .get(start..start + info.n_bytes() as usize)
            .unwrap_or_default()
    }

    /// Tensor `name` dequantized to f32, with its row-major (PyTorch) shape: `ne`
    /// reversed, so a linear weight comes back as `[out_features, in_features]`.
    /// The values are in stored order (no permutation is undone).
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.tensor_info(name)?;
        if !t.dtype().can_dequantize() {
            return Err(Error::UnsupportedType {
                path: self.path.clone(),
                tensor: name.to_string(),
                dtype: t.dtype().name().to_string(),
                expected: DEQUANT_TYPES,
            });
        }
        let mut out = vec![0f32; t.n_elements() as usize];
        dequantize(t.dtype(), self.bytes_of(t), &mut out).map_err(|e| Error::Tensor {
            path: self.path.clone(),
            tensor: name.to_string(),
            message: e.to_string(),
        })?;
        Ok((t.shape(), out))
    }
}
