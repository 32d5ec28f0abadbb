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
//! - [`conv2d`] and [`conv2d_layer`]: the 2-D convolution, forward and its three
//!   gradients straight from NCHW on burn-flex ([`conv`]), one node.
//! - [`upsample2x`] and [`downsample2x`]: nearest 2× upsampling and 2×2 average pooling
//!   ([`resample`]), one pass and one node each way.
//! - On burn's `Cube` backend (wgpu, CUDA; this crate's `wgpu`/`cuda` features) the
//!   GroupNorm and SiLU kernels are cubecl kernels ([`cube`]), with the same autodiff
//!   nodes; the convolution and the resampling take burn's own operations there.
//! - Every other backend takes the trait's default bodies, which compose burn's
//!   primitives ([`composed`]): the same function, one node per primitive.
//!
//! The tests (`tests/`) hold the kernels against f64 definitions (and GroupNorm's f64
//! gradients against central differences), and each Flex kernel to the bit across
//! thread counts.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! let dev = Device::flex();
//! let up = scorelab_kernels::upsample2x(Tensor::<4>::ones([1, 2, 3, 3], &dev));
//! assert_eq!(up.dims(), [1, 2, 6, 6]);
//! let x = Tensor::<4>::ones([2, 4, 3, 3], &dev);
//! let (gamma, beta) = (Tensor::<1>::ones([4], &dev), Tensor::<1>::zeros([4], &dev));
//! let y = scorelab_kernels::group_norm_act(x, gamma, beta, 2, 1e-5, true);
//! assert_eq!(y.dims(), [2, 4, 3, 3]);
//! ```

pub mod activation;
mod autodiff;
pub mod composed;
pub mod conv;
mod conv_flex;
#[cfg(feature = "cube")]
pub mod cube;
pub mod flex;
#[cfg(feature = "fusion")]
pub mod fusion;
pub mod math;
pub mod resample;

use burn::backend::{Backend, Dispatch, backend_extension, tensor::FloatTensor};
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

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

/// The operation as burn dispatches it: to burn-flex's or the `Cube` backend's kernel, or
/// to the autodiff node (the `autodiff` module) that calls the inner backend's forward and
/// backward. With burn's `fusion` (feature `fusion`), `Fusion<B>` records both passes as
/// opaque operations of its stream and runs B's kernels when the stream executes
/// ([`fusion`]).
#[backend_extension(Flex, Cube: cfg(feature = "cube"), Autodiff, Fusion: cfg(feature = "fusion"))]
pub trait GroupNormOps: Backend {
    /// See [`GroupNormKernel::gn_forward`].
    #[fusion(dtype = x, shape = x)]
    fn fused_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FloatTensor<Self>;

    /// See [`GroupNormKernel::gn_backward`]: (∂x, ∂γ, ∂β). Only burn's fusion calls it
    /// (through [`GroupNormKernel`] on `Fusion<B>`); the default composes burn's
    /// primitives.
    #[fusion(meta = |x, gamma, beta, _grad, _groups, _eps, _silu| (x.clone(), gamma.clone(), beta.clone()))]
    fn fused_group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed::backward::<Self>(x, gamma, beta, grad, groups, eps, silu).into_tuple()
    }
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

    fn fused_group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        Self::gn_backward(x, gamma, beta, grad, groups, eps, silu).into_tuple()
    }
}

/// SiLU, x·sigmoid(x), as one operation and one autodiff node (on burn-flex, one
/// vectorised pass each way; elsewhere burn's `sigmoid` and products).
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    use crate::activation::SiluOps;
    if !has_kernels(&x.device()) {
        let x = x.into_dispatch();
        return Tensor::from_dispatch(activation::composed_forward::<Dispatch>(x));
    }
    Tensor::from_dispatch(Dispatch::fused_silu(x.into_dispatch()))
}

/// Whether GroupNorm and SiLU have kernels of this crate on `device`: burn-flex always,
/// the `Cube` backend (wgpu, CUDA) when this crate is built with `wgpu` or `cuda`.
/// Elsewhere (a GPU backend enabled in burn but not here) the wrappers compose burn's
/// operations instead of reaching an extension that would panic.
fn has_kernels(device: &burn::tensor::Device) -> bool {
    cfg!(feature = "cube") || device.clone().inner() == burn::tensor::Device::flex()
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
    if !has_kernels(&x.device()) {
        let (x, g, b) = (
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
        );
        let out = composed::forward::<Dispatch>(x, g, b, groups, eps, silu);
        return Tensor::from_dispatch(out);
    }
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

/// The 2-D convolution `bias + x ⋆ weight` (`x: [N, C_in, H, W]`, `weight: [C_out,
/// C_in/G, k_h, k_w]`, burn's [`ConvOptions`]) as one operation and one autodiff node.
/// On burn-flex (with or without autodiff), for f32, the NCHW kernels of this crate
/// ([`conv`]: the forward pass where it is the faster one, the three gradients always);
/// on other devices burn's own `conv2d`, so it can be called on any device.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    use crate::conv::ConvOps;
    if x.device().inner() != burn::tensor::Device::flex() {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let (x, w) = (x.into_dispatch(), weight.into_dispatch());
    Tensor::from_dispatch(match bias {
        Some(b) => Dispatch::scorelab_conv2d_bias(x, w, b.into_dispatch(), options),
        None => Dispatch::scorelab_conv2d(x, w, options),
    })
}

/// burn-nn's [`Conv2d`](burn::nn::conv::Conv2d) layer applied through [`conv2d`]: the
/// same padding (`Same`, `Valid` or explicit), stride, dilation and groups as its own
/// `forward`, and the same parameters, so records stay as they are.
pub fn conv2d_layer(layer: &burn::nn::conv::Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let options = ConvOptions::new_with_padding(
        layer.stride,
        [padding(layer, 0, h), padding(layer, 1, w)],
        layer.dilation,
        layer.groups,
    );
    let bias = layer.bias.as_ref().map(|b| b.val());
    conv2d(x, layer.weight.val(), bias, options)
}

/// The (before, after) padding of axis `axis` (0: height, 1: width) of `len` values as
/// burn-nn's `Conv2d` takes it (its own computation is private): `Same` pads to an
/// output of ⌈len/stride⌉ with the kernel's undilated size, the odd value after.
fn padding(layer: &burn::nn::conv::Conv2d, axis: usize, len: usize) -> (usize, usize) {
    use burn::nn::PaddingConfig2d as P;
    let (kernel, stride) = (layer.kernel_size[axis], layer.stride[axis]);
    match layer.padding {
        P::Valid => (0, 0),
        P::Same => {
            let out = len.div_ceil(stride);
            let total = match out {
                0 => 0,
                _ => ((out - 1) * stride + kernel).saturating_sub(len),
            };
            (total / 2, total - total / 2)
        }
        P::Explicit(top, _, bottom, _) if axis == 0 => (top, bottom),
        P::Explicit(_, left, _, right) => (left, right),
    }
}

/// Nearest 2× upsampling of `[N, C, H, W]` to `[N, C, 2H, 2W]`, one operation and one
/// autodiff node (its gradient the 2×2 block sum) on burn-flex; burn's expanded view
/// elsewhere ([`resample`]).
pub fn upsample2x(x: Tensor<4>) -> Tensor<4> {
    use crate::resample::ResampleOps;
    if x.device().inner() != burn::tensor::Device::flex() {
        let [b, c, h, w] = x.dims();
        return x
            .reshape([b, c, h, 1, w, 1])
            .expand([b, c, h, 2, w, 2])
            .reshape([b, c, 2 * h, 2 * w]);
    }
    Tensor::from_dispatch(Dispatch::scorelab_upsample2x(x.into_dispatch()))
}

/// 2×2 average pooling of `[N, C, 2H, 2W]` to `[N, C, H, W]` (`((a + b) + (c + d))·¼`
/// per block), one operation and one autodiff node on burn-flex; burn's means over
/// inner axes elsewhere ([`resample`]). `H` and `W` must be even.
pub fn downsample2x(x: Tensor<4>) -> Tensor<4> {
    use crate::resample::ResampleOps;
    let [b, c, h, w] = x.dims();
    assert!(
        h.is_multiple_of(2) && w.is_multiple_of(2),
        "downsample2x: {h}×{w} is not even"
    );
    if x.device().inner() != burn::tensor::Device::flex() {
        return x
            .reshape([b, c, h / 2, 2, w / 2, 2])
            .mean_dim(5)
            .mean_dim(3)
            .reshape([b, c, h / 2, w / 2]);
    }
    Tensor::from_dispatch(Dispatch::scorelab_downsample2x(x.into_dispatch()))
}
