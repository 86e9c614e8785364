//! [`Shard`]: a stable split of the rows by id, for job arrays.

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Shard `index` of `count` (0-based): the rows whose stable id hashes to `index`
/// modulo `count`. The split depends only on the ids, never on row order, so every
/// job of an array sees the same partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses `"i/N"` with `0 <= i < N`.
    pub fn parse(spec: &str) -> Result<Shard> {
        let bad = |why: &str| Error::Config {
            key: "shard".into(),
            message: format!("{spec:?}: {why} (expected i/N with 0 <= i < N, e.g. 0/4)"),
        };
        let (i, n) = spec.split_once('/').ok_or_else(|| bad("no `/`"))?;
        let index: usize = i.trim().parse().map_err(|_| bad("i is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 || index >= count {
            return Err(bad("out of range"));
        }
        Ok(Shard { index, count })
    }

    /// The shard a stable id falls in: the first 8 bytes of its SHA-256, big-endian,
    /// modulo `count`.
    pub fn of(id: &str, count: usize) -> usize {
        let d = Sha256::digest(id.as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        (u64::from_be_bytes(b) % count.max(1) as u64) as usize
    }

    pub fn contains(&self, id: &str) -> bool {
        Shard::of(id, self.count) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_partition() {
        assert_eq!(Shard::parse("1/4").unwrap(), Shard { index: 1, count: 4 });
        for bad in ["4/4", "x/2", "1", "0/0", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let ids: Vec<String> = (0..200).map(|i| format!("row-{i}")).collect();
        let mut seen = vec![0usize; 200];
        for k in 0..3 {
            let s = Shard { index: k, count: 3 };
            for (i, id) in ids.iter().enumerate() {
                if s.contains(id) {
                    seen[i] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|c| *c == 1),
            "every id in exactly one shard"
        );
        // Known value: stable across releases (a job array mixes binaries).
        // (python: int.from_bytes(hashlib.sha256(b"abc").digest()[:8], "big") % 1000)
        assert_eq!(Shard::of("abc", 1000), 74);
        let sizes: Vec<usize> = (0..3)
            .map(|k| ids.iter().filter(|id| Shard::of(id, 3) == k).count())
            .collect();
        assert!(sizes.iter().all(|n| *n > 40), "roughly balanced: {sizes:?}");
    }
}
