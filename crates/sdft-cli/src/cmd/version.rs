//! `sdft --version`: crate version and the backend this build runs on (the same
//! priority as `sdft_model::backend`: cuda, then wgpu, then flex).

#[cfg(feature = "cuda")]
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (backend: cuda)");
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (backend: wgpu)");
#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (backend: flex)");

#[cfg(test)]
mod tests {
    #[test]
    fn version_agrees_with_the_model_crate() {
        let expected = format!("(backend: {})", sdft_model::backend::backend_name());
        assert!(super::LONG_VERSION.ends_with(&expected));
    }
}
