//! Helpers of the convolution gradients (`conv_grad.rs`, scorelab patch): the float
//! types computed natively, per-channel work under `rayon`, and sums accumulated in f64
//! over eight lanes. (The fused batch normalisation that first brought them here left
//! the patch on 2026-12-07: scorelab's GroupNorm is now a kernel of its own crate.)

use alloc::vec::Vec;
use burn_backend::{DType, Element};
use burn_std::{bf16, f16};

use crate::FlexTensor;
use crate::ops::module::{cast_from_f32, cast_to_f32};

/// The float types computed natively (here and in `conv_grad.rs`).
pub(crate) trait Real:
    'static
    + Element
    + Default
    + bytemuck::Pod
    + Copy
    + Send
    + Sync
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
{
    const ONE: Self;
    fn to64(self) -> f64;
    fn from64(v: f64) -> Self;
}

impl Real for f32 {
    const ONE: Self = 1.0;
    #[inline]
    fn to64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    const ONE: Self = 1.0;
    #[inline]
    fn to64(self) -> f64 {
        self
    }
    #[inline]
    fn from64(v: f64) -> Self {
        v
    }
}

/// `f(c)` for every channel, in parallel under `rayon`.
pub(crate) fn per_channel<T: Send>(
    channels: usize,
    f: impl Fn(usize) -> T + Sync + Send,
) -> Vec<T> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        (0..channels).map(f).collect()
    }
}

/// The runs of channel `c`.
pub(crate) fn runs<E: Real>(
    x: &[E],
    (b, ch, s): (usize, usize, usize),
    c: usize,
) -> impl Iterator<Item = &[E]> {
    (0..b).map(move |i| &x[(i * ch + c) * s..(i * ch + c + 1) * s])
}

/// Σ f(x) over `xs` in f64, in eight independent lanes: one running sum would chain
/// every addition on the previous one (latency-bound, and it cannot vectorise).
#[inline]
pub(crate) fn lane_sum<E: Real>(xs: &[E], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            acc[i] += f(c[i].to64());
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|v| f(v.to64())).sum();
    acc.iter().sum::<f64>() + tail
}

pub(crate) fn to_f32(t: FlexTensor) -> FlexTensor {
    match t.dtype() {
        DType::F16 => cast_to_f32::<f16>(t, f16::to_f32),
        DType::BF16 => cast_to_f32::<bf16>(t, bf16::to_f32),
        _ => t,
    }
}

pub(crate) fn from_f32(t: FlexTensor, dtype: DType) -> FlexTensor {
    match dtype {
        DType::F16 => cast_from_f32::<f16>(t, f16::from_f32),
        DType::BF16 => cast_from_f32::<bf16>(t, bf16::from_f32),
        _ => t,
    }
}
