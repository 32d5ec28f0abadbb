//! scorelab's kernels, as burn 0.22 backend extensions (`#[backend_extension]`): the
//! operations the UNet spends its CPU time in, fused into one pass forward and one
//! pass backward, and differentiated as one autodiff node.
//!
//! - [`group_norm_act`]: GroupNorm (the statistics of each item and group, biased
//!   variance, ε inside the square root), the per-channel affine γ·x̂ + β, and
//!   optionally SiLU, in one operation. On burn-flex ([`GroupNormKernel`] for `Flex`)
//!   each (item, group) block is read twice forward (mean, centred sum of squares, both
//!   accumulated in f64 in a fixed order) and written once; the backward pass reads it
//!   twice and writes the input gradient once, with the γ and β gradients summed over
//!   the batch in item order. The blocks run on rayon, but every sum is inside one
//!   block or in a fixed order across them, so the result is the same on any number of
//!   threads. SiLU's sigmoid uses a polynomial e^x that vectorises ([`math::exp_f32`]).
//! - [`silu`]: x·sigmoid(x) alone (the time embeddings, EDM's adaptive-scale blocks),
//!   one pass and one node each way on burn-flex.
//! - Every other backend takes the trait's default bodies, which compose burn's
//!   primitives ([`composed`]): the same function, one node per primitive.
//!
//! The tests (`tests/group_norm.rs`) hold both paths against an f64 definition, the
//! f64 gradients against central differences, and the Flex kernel to the bit across
//! thread counts.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! let dev = Device::flex();
//! let x = Tensor::<4>::ones([2, 4, 3, 3], &dev);
//! let (gamma, beta) = (Tensor::<1>::ones([4], &dev), Tensor::<1>::zeros([4], &dev));
//! let y = scorelab_kernels::group_norm_act(x, gamma, beta, 2, 1e-5, true);
//! assert_eq!(y.dims(), [2, 4, 3, 3]);
//! ```

pub mod activation;
mod autodiff;
pub mod composed;
pub mod flex;
pub mod math;

use burn::backend::{Backend, Dispatch, backend_extension, tensor::FloatTensor};
use burn::tensor::Tensor;

pub use composed::GnGrads;

/// The fused GroupNorm + affine (+ SiLU) on one execution backend: forward, and the
/// backward pass the autodiff node calls. The default bodies compose burn's primitives
/// ([`composed`]); burn-flex overrides both ([`flex`]).
pub trait GroupNormKernel: Backend {
    /// `act(γ[c]·(x − μ_ng)/√(σ²_ng + ε) + β[c])` for `x` of shape `[N, C, …]`, with
    /// μ, σ² over each item's `groups` groups of `C/groups` channels; `act` is SiLU when
    /// `silu`, else the identity.
    fn gn_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FloatTensor<Self> {
        composed::forward::<Self>(x, gamma, beta, groups, eps, silu)
    }

    /// The gradients of [`Self::gn_forward`] for the output gradient `grad`.
    fn gn_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> GnGrads<Self> {
        composed::backward::<Self>(x, gamma, beta, grad, groups, eps, silu)
    }
}

/// The operation as burn dispatches it: to burn-flex's kernel, or to the autodiff node
/// (the `autodiff` module) that calls the inner backend's forward and backward.
#[backend_extension(Flex, Autodiff)]
pub trait GroupNormOps: Backend {
    /// See [`GroupNormKernel::gn_forward`].
    fn fused_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FloatTensor<Self>;
}

impl GroupNormOps for burn::backend::Flex {
    fn fused_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FloatTensor<Self> {
        Self::gn_forward(x, gamma, beta, groups, eps, silu)
    }
}

/// SiLU, x·sigmoid(x), as one operation and one autodiff node (on burn-flex, one
/// vectorised pass each way; elsewhere burn's `sigmoid` and products).
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    use crate::activation::SiluOps;
    Tensor::from_dispatch(Dispatch::fused_silu(x.into_dispatch()))
}

/// GroupNorm of `x` (`[N, C, …]`) with `groups` groups and ε = `eps`, the per-channel
/// affine (γ, β of shape `[C]`), then SiLU when `silu`: one operation forward and one
/// autodiff node. `groups` must divide `C`.
pub fn group_norm_act<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    groups: usize,
    eps: f64,
    silu: bool,
) -> Tensor<D> {
    let dims = x.dims();
    assert!(
        D >= 2 && groups > 0 && dims[1].is_multiple_of(groups),
        "group_norm_act: {groups} groups must divide the {} channels of {dims:?}",
        dims[1]
    );
    let out = Dispatch::fused_group_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        groups,
        eps,
        silu,
    );
    Tensor::from_dispatch(out)
}
