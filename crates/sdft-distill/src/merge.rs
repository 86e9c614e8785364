//! Joining shard outputs (`sdft distill merge`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sdft_core::Example;

use crate::row::{read_rows, write_rows, DistilledRow};
use crate::{merge_settings, settings_path, Distiller, EmptyPolicy, Error, Result, Summary};

/// `sdft distill merge` as a whole: checks that every shard was made with the
/// same settings ([`merge_settings`]), locks `output`, joins the shards' rows in
/// the order of `examples` (every source id exactly once, see [`merge_shards`];
/// rows that `on_empty = skip` leaves out may be absent), writes the output and
/// its settings, and saves and returns the [`Summary`]: counts from the rows;
/// manifest, skipped rows, tokens and times from the shards' summaries.
pub fn merge_outputs(
    shards: &[PathBuf],
    output: &Path,
    examples: &[Example],
    on_empty: EmptyPolicy,
) -> Result<Summary> {
    let order: Vec<String> = examples.iter().map(|e| e.id.clone()).collect();
    let skipped: HashSet<String> = match on_empty {
        EmptyPolicy::Skip => examples
            .iter()
            .filter(|e| Distiller::empty_reason(e).is_some())
            .map(|e| e.id.clone())
            .collect(),
        EmptyPolicy::Keep => HashSet::new(),
    };
    let agreed = merge_settings(shards)?;
    let _lock = sdft_core::provenance::OutputLock::acquire(output)?;
    let rows = merge_shards(shards, &order, &skipped)?;
    write_rows(output, &rows)?;
    agreed.write(&settings_path(output))?;
    let summaries: Vec<Summary> = shards
        .iter()
        .filter_map(|p| Summary::load(&Summary::path_for(p)).ok())
        .collect();
    let mut manifest = summaries
        .first()
        .map(|s| s.manifest.clone())
        .unwrap_or_default();
    manifest.shard = None;
    let mut summary = Summary::from_rows(output, &rows, manifest);
    summary.skipped = summaries.iter().flat_map(|s| s.skipped.clone()).collect();
    summary.tokens_this_run = summaries.iter().map(|s| s.tokens_this_run).sum();
    summary.generation_seconds = summaries.iter().map(|s| s.generation_seconds).sum();
    summary.wall_seconds = summaries.iter().map(|s| s.wall_seconds).sum();
    if summary.generation_seconds > 0.0 {
        summary.tokens_per_second = summary.tokens_this_run as f64 / summary.generation_seconds;
    }
    summary.save(&Summary::path_for(output))?;
    Ok(summary)
}

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
