//! The local cache, `$SDFT_HOME` (default `~/.cache/sdft`): where a cached file
//! is (lookups that record a skip are in [`crate::lookup`]).

use std::path::PathBuf;

/// `$SDFT_HOME`, or `~/.cache/sdft`.
pub fn sdft_home() -> PathBuf {
    if let Some(h) = std::env::var_os("SDFT_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/sdft")
}

/// `$SDFT_HOME/<rel>` when the file is there, else `None`; says nothing.
pub fn cached_quiet(rel: &str) -> Option<PathBuf> {
    let path = sdft_home().join(rel);
    path.is_file().then_some(path)
}
