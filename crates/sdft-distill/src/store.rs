//! [`ChunkStore`]: the resumable on-disk state of a distillation run.
//!
//! While a run is in progress, finished rows go to `OUT.parquet.parts/` as
//! numbered chunk files (`chunk-000000.parquet`, ...), each written atomically
//! (temporary file, fsync, rename), so a killed run loses at most the rows not yet
//! flushed. A rerun loads every chunk and generates only the missing ids; since each
//! row's random stream depends only on the seed and its id, the final output equals
//! an uninterrupted run's. [`ChunkStore::finish`] writes `OUT.parquet` in source
//! order, atomically, and removes the chunk directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::distiller::Sink;
use crate::row::{read_rows, write_rows, DistilledRow};
use crate::{Error, Result};

/// Chunk files of an unfinished run, beside the output.
pub struct ChunkStore {
    dir: PathBuf,
    next: usize,
}

impl ChunkStore {
    /// The chunk directory of an output path: `OUT.parquet.parts`.
    pub fn dir_for(output: &Path) -> PathBuf {
        let mut name = output
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".parts");
        output.with_file_name(name)
    }

    /// Opens (creating) the store of `output` and returns the rows already done:
    /// those of every chunk, or of a finished `output` when there are no chunks.
    pub fn open(output: &Path) -> Result<(ChunkStore, HashMap<String, DistilledRow>)> {
        let dir = Self::dir_for(output);
        let mut done = HashMap::new();
        let mut next = 0;
        if dir.is_dir() {
            let mut chunks: Vec<(usize, PathBuf)> = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
                let path = entry.map_err(|e| Error::io(&dir, e))?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                // Leftover temporary files of a killed write are ignored.
                if let Some(n) = name
                    .strip_prefix("chunk-")
                    .and_then(|r| r.strip_suffix(".parquet"))
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    chunks.push((n, path));
                }
            }
            chunks.sort();
            for (n, path) in chunks {
                for row in read_rows(&path)? {
                    done.insert(row.id.clone(), row);
                }
                next = next.max(n + 1);
            }
        } else if output.is_file() {
            for row in read_rows(output)? {
                done.insert(row.id.clone(), row);
            }
        }
        Ok((ChunkStore { dir, next }, done))
    }

    /// Writes every row of `order` (source order) to `output` atomically, taking
    /// each from `rows`, and removes the chunk directory. An id without a row is an
    /// error naming it.
    pub fn finish(
        self,
        output: &Path,
        order: &[String],
        rows: &mut HashMap<String, DistilledRow>,
    ) -> Result<Vec<DistilledRow>> {
        let mut out = Vec::with_capacity(order.len());
        for id in order {
            out.push(rows.remove(id).ok_or_else(|| Error::Output {
                path: output.to_path_buf(),
                message: format!("row {id} was never distilled"),
            })?);
        }
        write_rows(output, &out)?;
        if self.dir.is_dir() {
            std::fs::remove_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        }
        Ok(out)
    }
}

impl Sink for ChunkStore {
    fn write(&mut self, rows: &[DistilledRow]) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.dir.join(format!("chunk-{:06}.parquet", self.next));
        write_rows(&path, rows)?;
        self.next += 1;
        Ok(())
    }
}
