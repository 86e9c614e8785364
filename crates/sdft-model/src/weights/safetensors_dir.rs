//! HF safetensors checkpoints as a [`WeightSource`]: `model.safetensors`, or shards
//! listed in `model.safetensors.index.json`; F32, F16 and BF16 tensors; memory-mapped.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::{summarize, F32Tensor, WeightSource};
use crate::{Error, Result};

struct Shard {
    path: PathBuf,
    mmap: Mmap,
}

/// An HF checkpoint directory's safetensors files.
pub struct SafetensorsDir {
    dir: PathBuf,
    shards: Vec<Shard>,
    /// tensor name -> (shard index, dtype name)
    index: HashMap<String, (usize, String)>,
}

fn st_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        message: format!("invalid safetensors file: {e}"),
    }
}

impl SafetensorsDir {
    /// Opens `dir/model.safetensors`, or the shards named by
    /// `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index_path.is_file() {
            let text =
                std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
                path: index_path.clone(),
                message: e.to_string(),
            })?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::Format {
                    path: index_path.clone(),
                    message: "expected an object `weight_map` of tensor name -> shard file".into(),
                })?;
            let mut files: Vec<PathBuf> = Vec::new();
            for f in map.values() {
                let f = f.as_str().ok_or_else(|| Error::Format {
                    path: index_path.clone(),
                    message: format!("`weight_map` values must be file names, found {f}"),
                })?;
                let p = dir.join(f);
                if !files.contains(&p) {
                    files.push(p);
                }
            }
            files.sort();
            files
        } else {
            vec![dir.join("model.safetensors")]
        };
        let mut shards = Vec::new();
        let mut index = HashMap::new();
        for (i, path) in files.into_iter().enumerate() {
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            // SAFETY: read-only mapping; the file must not change while loaded.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, e))?;
            let st = SafeTensors::deserialize(&mmap).map_err(|e| st_err(&path, e))?;
            for (name, view) in st.tensors() {
                index.insert(name, (i, format!("{:?}", view.dtype())));
            }
            shards.push(Shard { path, mmap });
        }
        Ok(SafetensorsDir {
            dir: dir.to_path_buf(),
            shards,
            index,
        })
    }

    /// Names of all tensors.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.index.keys().map(String::as_str).collect();
        v.sort();
        v
    }
}

/// Converts raw little-endian tensor bytes to f32.
pub(crate) fn to_f32(path: &Path, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let out = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::UnsupportedType {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
                expected: "F32, F16, BF16",
            })
        }
    };
    Ok(out)
}

impl WeightSource for SafetensorsDir {
    fn path(&self) -> &Path {
        &self.dir
    }

    fn tensor(&self, hf_name: &str) -> Result<Option<F32Tensor>> {
        let Some((i, _)) = self.index.get(hf_name) else {
            return Ok(None);
        };
        let shard = &self.shards[*i];
        let st = SafeTensors::deserialize(&shard.mmap).map_err(|e| st_err(&shard.path, e))?;
        let view = st.tensor(hf_name).map_err(|e| st_err(&shard.path, e))?;
        let data = to_f32(&shard.path, hf_name, view.dtype(), view.data())?;
        Ok(Some(F32Tensor {
            shape: view.shape().to_vec(),
            data,
        }))
    }

    fn dtype_summary(&self) -> String {
        summarize(self.index.values().map(|(_, d)| d.as_str()))
    }
}
