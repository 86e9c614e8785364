//! The GPU backend of a `--features wgpu` or `--features cuda` build of these tests
//! (`cuda` first, as in `sdft_model::backend`), and whether this machine has a
//! device for it: the parity set (`gpu_parity.rs`) compares it with `flex`, and
//! `cargo xtask gpu-check` measures on it.

use std::sync::OnceLock;

/// The backend under test.
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda<f32, i32>;
/// The backend under test.
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
pub type Gpu = burn::backend::Wgpu<f32, i32>;

/// The device type of [`Gpu`].
pub type GpuDevice = <Gpu as burn::tensor::backend::BackendTypes>::Device;

/// The name of [`Gpu`]: `cuda` or `wgpu`.
pub const GPU_NAME: &str = if cfg!(feature = "cuda") {
    "cuda"
} else {
    "wgpu"
};

static DEVICE: OnceLock<Result<(GpuDevice, String), String>> = OnceLock::new();

/// Runs `f` with the default panic message silenced: the runtimes report a
/// missing device by panicking, which here is an answer, not a failure.
fn quietly<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(f);
    std::panic::set_hook(hook);
    r.map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into())
    })
}

#[cfg(feature = "cuda")]
fn probe() -> Result<(GpuDevice, String), String> {
    use burn::tensor::Tensor;
    let device = GpuDevice::default();
    quietly(|| {
        let t = Tensor::<Gpu, 1>::from_floats([1.0, 2.0], &device);
        t.sum().into_scalar()
    })?;
    Ok((device, "CUDA device 0".into()))
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
fn probe() -> Result<(GpuDevice, String), String> {
    use burn::backend::wgpu::{graphics::AutoGraphicsApi, init_setup, RuntimeOptions};
    let device = GpuDevice::default();
    let info = quietly(|| {
        let setup = init_setup::<AutoGraphicsApi>(&device, RuntimeOptions::default());
        let info = setup.adapter.get_info();
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            info.name, info.device_type, info.backend, info.driver, info.driver_info
        )
    })?;
    Ok((device, info))
}

/// The skip key of a missing device ([`sdft_model::assets::skip()`]): `vulkan` for
/// `wgpu`, `cuda` for `cuda`.
pub const GPU_SKIP_KEY: &str = if cfg!(feature = "cuda") {
    "cuda"
} else {
    "vulkan"
};

/// The device to test on, or `None` (the calling test recorded as skipped, key
/// [`GPU_SKIP_KEY`], with why) when this machine has none: no Vulkan driver for
/// `wgpu` (Debian: `apt-get install mesa-vulkan-drivers libvulkan1` gives
/// lavapipe), no NVIDIA GPU for `cuda`. The device found is noted once.
pub fn gpu_device() -> Option<GpuDevice> {
    let r = DEVICE.get_or_init(|| {
        let r = probe();
        if let Ok((_, info)) = &r {
            eprintln!("note: {GPU_NAME} device: {info}");
        }
        r
    });
    match r {
        Ok((d, _)) => Some(d.clone()),
        Err(e) => {
            sdft_model::assets::skip(
                GPU_SKIP_KEY,
                &format!(
                    "no {GPU_NAME} device on this machine ({}); the GPU parity set did not run{}",
                    e.lines().next().unwrap_or(""),
                    if GPU_NAME == "wgpu" {
                        " (Debian: apt-get install mesa-vulkan-drivers libvulkan1)"
                    } else {
                        ""
                    }
                ),
            );
            None
        }
    }
}
