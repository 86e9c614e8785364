//! Helpers for the workspace tests: where the paper's data lives.
//!
//! Tests that read `../shared/data/sdft/` find it through `SDFT_SHARED` (set by
//! `.ci/run`). Where it is unset each is recorded as skipped (key `shared-data`,
//! see `sdft_model::assets::skip`).

#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod gpu;
pub mod gpu_check;

use std::path::PathBuf;

/// `$SDFT_SHARED/data/sdft`, or `None` (the calling test recorded as skipped) when
/// `SDFT_SHARED` is unset or does not hold the data.
pub fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("SDFT_SHARED").map(|s| PathBuf::from(s).join("data/sdft"));
    match dir {
        Some(d) if d.is_dir() => Some(d),
        other => {
            sdft_model::assets::skip(
                "shared-data",
                &format!(
                    "SDFT_SHARED is {}; tests that read the paper's data files did not run \
                     (set SDFT_SHARED=../shared to run them)",
                    match other {
                        Some(d) => format!("set but {} is not a directory", d.display()),
                        None => "unset".into(),
                    }
                ),
            );
            None
        }
    }
}

/// The README's code examples, compiled (and where not marked `no_run`, run) as
/// doctests of this crate, so they stay true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
