//! What the kernels' test files share: the wgpu device the `Cube` kernels are tested on.

/// burn's default wgpu device, or `None` (after saying why on stderr) where no adapter
/// can be opened: without a GPU that takes Debian's software Vulkan driver, lavapipe
/// (`apt-get install mesa-vulkan-drivers`), which `.ci/run` installs where it can. The
/// first allocation is what finds the adapter, so that is the probe.
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Option<burn::tensor::Device> {
    use burn::tensor::{Device, DeviceKind, Tensor};
    let probe = std::panic::catch_unwind(|| {
        let dev = Device::wgpu(DeviceKind::DefaultDevice);
        Tensor::<1>::ones([1], &dev).into_data();
        dev
    });
    match probe {
        Ok(dev) => Some(dev),
        Err(_) => {
            eprintln!(
                "SKIPPED: no wgpu adapter (no GPU and no software Vulkan: \
                 apt-get install mesa-vulkan-drivers)"
            );
            None
        }
    }
}
