//! Atomic file writes (the one implementation is
//! [`sdft_core::provenance::write_atomic_with`]: a temporary file beside the target,
//! fsynced, renamed over it, the directory fsynced), with this crate's error type.

use std::fs::File;
use std::path::Path;

use crate::Result;

/// Creates `path` atomically with whatever `fill` writes into the file.
pub fn write_with<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(File) -> Result<()>,
{
    sdft_core::provenance::write_atomic_with(path, |f: &mut File| {
        let handle = f.try_clone().map_err(|e| crate::Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        fill(handle)
    })
}

/// Writes bytes to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(sdft_core::provenance::write_atomic(path, bytes)?)
}
