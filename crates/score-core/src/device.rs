//! Compute devices by name: `flex` (CPU, always built), `wgpu` and `cuda` (opt-in cargo
//! features of this crate, forwarded by the CLI and xtask as `--features cuda|wgpu`).
//!
//! [`by_name`] touches the device once, so that missing hardware or drivers are an
//! error at start-up rather than a panic in the middle of a run.

use burn::tensor::{Device, Tensor};

use crate::error::{Result, ScoreError};
use crate::tensor::to_vec_f32;

/// The device names [`by_name`] knows.
pub const NAMES: &str = "flex, wgpu, wgpu:N, cuda or cuda:N";

/// The device called `name`: `flex` (or `cpu`), `wgpu` (the default adapter), `wgpu:N`
/// (the N-th discrete GPU), `cuda` (the first GPU) or `cuda:N`.
pub fn by_name(name: &str) -> Result<Device> {
    let unknown = || ScoreError::InvalidArgument {
        field: "device",
        detail: format!("unknown device '{name}', expected {NAMES}"),
    };
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => (k, Some(i.parse::<usize>().map_err(|_| unknown())?)),
        None => (name, None),
    };
    let dev = match (kind, index) {
        ("flex" | "cpu", None) => Device::flex(),
        ("wgpu", i) => wgpu(i)?,
        ("cuda", i) => cuda(i.unwrap_or(0))?,
        _ => return Err(unknown()),
    };
    let probe = dev.clone();
    let ok = std::panic::catch_unwind(move || to_vec_f32(Tensor::<1>::ones([2], &probe)).is_ok());
    match ok {
        Ok(true) => Ok(dev),
        _ => Err(ScoreError::InvalidArgument {
            field: "device",
            detail: format!("'{name}' could not be initialised (no such hardware or driver?)"),
        }),
    }
}

fn not_built(name: &str) -> ScoreError {
    ScoreError::InvalidArgument {
        field: "device",
        detail: format!(
            "'{name}': this binary was built without the `{name}` feature; rebuild with `--features {name}` (e.g. `cargo run -p scorelab --features {name} -- …`)"
        ),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu(index: Option<usize>) -> Result<Device> {
    use burn::tensor::DeviceKind;
    Ok(Device::wgpu(index.map_or(
        DeviceKind::DefaultDevice,
        DeviceKind::DiscreteGpu,
    )))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_index: Option<usize>) -> Result<Device> {
    Err(not_built("wgpu"))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device> {
    Err(not_built("cuda"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_is_always_there_and_unknown_names_are_errors() {
        assert!(by_name("flex").is_ok());
        let e = by_name("tpu").unwrap_err().to_string();
        assert!(e.contains("device") && e.contains("tpu"), "{e}");
        for bad in ["flex:1", "cuda:x", "cuda:", "tpu:0"] {
            let e = by_name(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_names_the_feature() {
        for name in ["cuda", "cuda:1"] {
            let e = by_name(name).unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
