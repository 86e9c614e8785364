//! The `devices` key (`--devices`): which devices hold a model replica in
//! data-parallel training.
//!
//! Each entry names one replica: `cpu` on a CPU (flex) build, `cuda` / `cuda:N` on
//! a `--features cuda` build, `wgpu` / `wgpu:N` on a `--features wgpu` build. The
//! same device may be named more than once (`cpu,cpu`: two replicas on the CPU).
//! An empty list means one replica on the build's default device.

use burn::tensor::backend::{Device, DeviceId};
use sdft_model::backend::{backend_name, compiled_backends, default_device, DefaultDevice};

use crate::{Error, Result};

/// The device families a spec can name, with the backend that runs each.
const FAMILIES: &[(&str, &str)] = &[("cpu", "flex"), ("cuda", "cuda"), ("wgpu", "wgpu")];

fn device_error(device: &str, message: String) -> Error {
    Error::Device {
        device: device.to_string(),
        message,
    }
}

/// What this build accepts, for error messages.
fn accepted() -> &'static str {
    match backend_name() {
        "cuda" => "`cuda` or `cuda:N` (N a GPU index)",
        "wgpu" => "`wgpu` or `wgpu:N` (N a discrete GPU index)",
        _ => "`cpu`",
    }
}

/// Parses one device spec for this build's training backend
/// ([`sdft_model::backend::DefaultBackend`]).
pub fn parse_device(spec: &str) -> Result<DefaultDevice> {
    let s = spec.trim();
    let (family, index) = match s.split_once(':') {
        Some((f, i)) => (f, Some(i)),
        None => (s, None),
    };
    let family = family.to_ascii_lowercase();
    let Some((_, needs)) = FAMILIES.iter().find(|(f, _)| *f == family) else {
        return Err(device_error(
            spec,
            format!(
                "unknown device; this build accepts {} (backends compiled: {})",
                accepted(),
                compiled_backends().join(", ")
            ),
        ));
    };
    let training = backend_name();
    if *needs != training {
        let why = if compiled_backends().contains(needs) {
            format!(
                "training in this build runs on {training} (backends compiled: {}); \
                 `{family}` devices need a build where {needs} is the training backend",
                compiled_backends().join(", ")
            )
        } else {
            format!(
                "this build has no {needs} backend (backends compiled: {}); rebuild with \
                 `--features {needs}` or name {}",
                compiled_backends().join(", "),
                accepted()
            )
        };
        return Err(device_error(spec, why));
    }
    let index = match index {
        None => return Ok(default_device()),
        Some(i) => i.parse::<u16>().map_err(|_| {
            device_error(
                spec,
                format!("expected `{family}:N` with N a device index, found `{i}`"),
            )
        })?,
    };
    if family == "cpu" {
        if index != 0 {
            return Err(device_error(
                spec,
                "the CPU backend has one device, `cpu` (name it several times for several replicas)"
                    .into(),
            ));
        }
        return Ok(default_device());
    }
    // Type 0 is a CUDA device, and a discrete GPU for wgpu.
    Ok(DefaultDevice::from_id(DeviceId::new(0, index)))
}

/// Parses the `devices` key: one replica per entry, or one replica on the default
/// device when the list is empty.
pub fn parse_devices(specs: &[String]) -> Result<Vec<DefaultDevice>> {
    if specs.is_empty() {
        return Ok(vec![default_device()]);
    }
    specs.iter().map(|s| parse_device(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_this_builds_devices() {
        assert_eq!(parse_devices(&[]).unwrap().len(), 1);
        if backend_name() == "flex" {
            let two = parse_devices(&["cpu".into(), "CPU".into()]).unwrap();
            assert_eq!(two.len(), 2);
            let e = parse_device("cuda:1").unwrap_err().to_string();
            assert!(
                e.contains("devices") && e.contains("cuda:1") && e.contains("flex"),
                "{e}"
            );
            assert!(parse_device("cpu:1").is_err());
        }
        let e = parse_device("tpu:0").unwrap_err().to_string();
        assert!(e.contains("unknown device") && e.contains("tpu:0"), "{e}");
    }
}
