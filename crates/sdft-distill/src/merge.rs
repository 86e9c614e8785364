//! Joining shard outputs (`sdft distill merge`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::row::{read_rows, DistilledRow};
use crate::{Error, Result};

/// Reads shard outputs and returns their rows in `source_ids` order, after checking
/// that every source id appears exactly once: duplicates across shards, ids missing
/// from every shard and ids not in the source are errors that list them. Ids in
/// `skipped` (empty rows left out under `on_empty = skip`) may be absent.
pub fn merge_shards(
    shards: &[PathBuf],
    source_ids: &[String],
    skipped: &HashSet<String>,
) -> Result<Vec<DistilledRow>> {
    let mut by_id: HashMap<String, (DistilledRow, usize)> = HashMap::new();
    let mut duplicates: Vec<String> = Vec::new();
    for (k, path) in shards.iter().enumerate() {
        for row in read_rows(path)? {
            if let Some((_, first)) = by_id.get(&row.id) {
                duplicates.push(format!(
                    "{} (in {} and {})",
                    row.id,
                    shards[*first].display(),
                    path.display()
                ));
                continue;
            }
            by_id.insert(row.id.clone(), (row, k));
        }
    }
    let source: HashSet<&str> = source_ids.iter().map(String::as_str).collect();
    let missing: Vec<&str> = source_ids
        .iter()
        .map(String::as_str)
        .filter(|id| !by_id.contains_key(*id) && !skipped.contains(*id))
        .collect();
    let mut extra: Vec<&str> = by_id
        .keys()
        .map(String::as_str)
        .filter(|id| !source.contains(id))
        .collect();
    extra.sort_unstable();
    let list = |v: &[&str]| {
        let head: Vec<&str> = v.iter().take(20).copied().collect();
        let more = v.len().saturating_sub(20);
        if more > 0 {
            format!("{} and {more} more", head.join(", "))
        } else {
            head.join(", ")
        }
    };
    let mut problems = Vec::new();
    if !duplicates.is_empty() {
        let d: Vec<&str> = duplicates.iter().map(String::as_str).collect();
        problems.push(format!(
            "{} ids in more than one shard: {}",
            d.len(),
            list(&d)
        ));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} of {} source ids in no shard: {}",
            missing.len(),
            source_ids.len(),
            list(&missing)
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "{} ids not in the source data: {}",
            extra.len(),
            list(&extra)
        ));
    }
    if !problems.is_empty() {
        return Err(Error::Merge {
            message: problems.join("; "),
        });
    }
    Ok(source_ids
        .iter()
        .filter_map(|id| by_id.remove(id).map(|r| r.0))
        .collect())
}
