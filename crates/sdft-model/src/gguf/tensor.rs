//! [`TensorInfo`]: where a tensor lives in a GGUF file and what it holds.

use super::types::GgmlType;

/// A tensor described by a GGUF file: name, ggml shape, element type and the
/// location of its data. Sizes are validated against the file when it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    name: String,
    ne: Vec<u64>,
    dtype: GgmlType,
    offset: u64,
    n_elements: u64,
    n_bytes: u64,
}

impl TensorInfo {
    pub(crate) fn new(
        name: String,
        ne: Vec<u64>,
        dtype: GgmlType,
        offset: u64,
        n_elements: u64,
        n_bytes: u64,
    ) -> Self {
        TensorInfo {
            name,
            ne,
            dtype,
            offset,
            n_elements,
            n_bytes,
        }
    }

    /// The tensor name (`"blk.0.attn_q.weight"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shape in ggml order: `ne[0]` is the fastest-varying (contiguous)
    /// dimension, so a `[out, in]` PyTorch weight has `ne = [in, out]`.
    pub fn ne(&self) -> &[u64] {
        &self.ne
    }

    /// The shape in row-major (PyTorch) order: `ne` reversed, last dimension
    /// contiguous. A 0-dimensional tensor has an empty shape.
    pub fn shape(&self) -> Vec<usize> {
        // Sizes fit usize: the data was checked to lie inside a mapped file.
        self.ne.iter().rev().map(|&d| d as usize).collect()
    }

    /// The element type.
    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// Offset of the data from the start of the data section (not of the file).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of elements (product of `ne`).
    pub fn n_elements(&self) -> u64 {
        self.n_elements
    }

    /// Number of bytes of data (whole blocks of [`TensorInfo::dtype`]).
    pub fn n_bytes(&self) -> u64 {
        self.n_bytes
    }
}
