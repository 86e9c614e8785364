//! The compute backend, chosen by cargo feature: `cuda`, else `wgpu`, else `flex`
//! (the pure-Rust CPU backend, the default). A default build compiles no GPU crates.

#[cfg(not(any(feature = "flex", feature = "cuda", feature = "wgpu")))]
compile_error!("sdft-model needs a backend feature: `flex` (CPU, default), `cuda` or `wgpu`");

/// The backend this build runs on.
#[cfg(feature = "cuda")]
pub type DefaultBackend = burn::backend::Cuda<f32, i32>;

/// The backend this build runs on.
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type DefaultBackend = burn::backend::Wgpu<f32, i32>;

/// The backend this build runs on.
#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
pub type DefaultBackend = burn::backend::Flex<f32, i32>;

/// The device type of [`DefaultBackend`].
pub type DefaultDevice = <DefaultBackend as burn::tensor::backend::BackendTypes>::Device;

/// The name of the backend this build runs on: `cuda`, `wgpu` or `flex`.
pub const fn backend_name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "wgpu") {
        "wgpu"
    } else {
        "flex"
    }
}

/// The backends compiled into this build, in priority order.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    v
}

/// The default device of [`DefaultBackend`] (the first GPU, or the CPU).
pub fn default_device() -> DefaultDevice {
    DefaultDevice::default()
}
