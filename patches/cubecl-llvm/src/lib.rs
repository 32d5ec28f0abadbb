//! cubecl-llvm without LLVM (scorelab's patch, see `PATCH.md`): the PTX-version table and
//! the feature narrowing that cubecl-cuda reads, verbatim from cubecl-llvm 0.11.3, and the
//! LLVM backend's types, whose compiler refuses every kernel. With cubecl-cuda's `cpp`
//! feature (which scorelab's `cuda` feature turns on) kernels go through NVRTC and this
//! compiler is never asked.

extern crate alloc;

#[cfg(feature = "nvptx")]
pub mod nvptx {
    //! The NVPTX items cubecl-cuda uses.
    pub mod ptx_version;
}

pub mod shared;

pub use shared::{NvptxModule, PlironArtifact, PlironCompiler, PlironOptions};

/// LLVM compilation targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlvmTarget {
    /// The host CPU.
    #[default]
    Cpu,
    /// AMD GPUs.
    #[cfg(feature = "amdgpu")]
    AmdGpu,
    /// NVIDIA GPUs.
    #[cfg(feature = "nvptx")]
    Nvptx,
}
