//! Fused batch normalisation with batch statistics (scorelab patch).
//!
//! Backs `ModuleOps::{batch_norm, batch_norm_train, batch_norm_train_backward}`, which
//! the trait implements by default as about seven whole-tensor passes (swap, mean,
//! subtract, square, mean, divide, scale, shift), each allocating. Here the statistics
//! take two passes over each channel (mean, then the centred sum of squares, both
//! accumulated in f64), the output one, and the backward pass two (the two channel sums,
//! then the input gradient). Channels run in parallel under `rayon`.
//!
//! Layout: the input is `[batch, channels, rest...]`; channel `c` of batch item `b` is the
//! contiguous run `(b * channels + c) * s .. + s` with `s` the product of `rest`.
//! f32 and f64 are computed natively; f16 and bf16 go through f32.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::ops::{BatchNormTrain, BatchNormTrainBackward};
use burn_backend::tensor::FloatTensor;
use burn_backend::{DType, Element, TensorMetadata};
use burn_std::{Bytes, Shape, bf16, f16};

use crate::ops::module::{cast_from_f32, cast_to_f32};
use crate::{Flex, FlexTensor, Layout};

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

/// `(batch, channels, per-channel run)` of a `[batch, channels, rest...]` shape.
fn geometry(shape: &Shape) -> (usize, usize, usize) {
    assert!(
        shape.num_dims() >= 2,
        "batch_norm: input rank must be at least 2, got {:?}",
        shape
    );
    let (b, c) = (shape[0], shape[1]);
    let s = shape.iter().skip(2).product::<usize>();
    (b, c, s)
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

/// `f(row, out)` for every `(batch, channel)` run of `out`, in parallel under `rayon`.
fn per_row<E: Real>(out: &mut [E], s: usize, f: impl Fn(usize, &mut [E]) + Sync + Send) {
    if s == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(s).enumerate().for_each(|(r, o)| f(r, o));
    }
    #[cfg(not(feature = "rayon"))]
    {
        out.chunks_mut(s).enumerate().for_each(|(r, o)| f(r, o));
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

/// (Σ dy, Σ dy·(x − m)) over paired runs, in eight lanes each (see [`lane_sum`]).
#[inline]
pub(crate) fn lane_sums2<E: Real>(xs: &[E], dys: &[E], m: f64) -> (f64, f64) {
    let (mut a, mut b) = ([0.0f64; 8], [0.0f64; 8]);
    let (mut cx, mut cd) = (xs.chunks_exact(8), dys.chunks_exact(8));
    for (x, d) in (&mut cx).zip(&mut cd) {
        for i in 0..8 {
            let dv = d[i].to64();
            a[i] += dv;
            b[i] += dv * (x[i].to64() - m);
        }
    }
    let (mut sa, mut sb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    for (x, d) in cx.remainder().iter().zip(cd.remainder()) {
        sa += d.to64();
        sb += d.to64() * (x.to64() - m);
    }
    (sa, sb)
}

/// Mean and biased variance of each channel (two passes, f64 accumulation).
fn stats<E: Real>(x: &[E], g: (usize, usize, usize)) -> Vec<(f64, f64)> {
    let n = (g.0 * g.2) as f64;
    per_channel(g.1, |c| {
        let mean = runs(x, g, c).map(|r| lane_sum(r, |v| v)).sum::<f64>() / n;
        let var = runs(x, g, c)
            .map(|r| {
                lane_sum(r, |v| {
                    let d = v - mean;
                    d * d
                })
            })
            .sum::<f64>()
            / n;
        (mean, var)
    })
}

/// `(x − mean) · γ/√(var + ε) + β` per channel.
fn normalise<E: Real>(
    x: &[E],
    g: (usize, usize, usize),
    stats: &[(f64, f64)],
    gamma: &[E],
    beta: &[E],
    epsilon: f64,
) -> Vec<E> {
    let coef: Vec<(E, E, E)> = (0..g.1)
        .map(|c| {
            let (mean, var) = stats[c];
            let a = gamma[c].to64() / (var + epsilon).sqrt();
            (E::from64(mean), E::from64(a), beta[c])
        })
        .collect();
    let mut out = vec![E::from64(0.0); x.len()];
    per_row(&mut out, g.2, |r, o| {
        let (m, a, b) = coef[r % g.1];
        for (y, &v) in o.iter_mut().zip(&x[r * g.2..(r + 1) * g.2]) {
            *y = (v - m) * a + b;
        }
    });
    out
}

fn tensor_of<E: Real>(data: Vec<E>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        E::dtype(),
    )
}

fn channel_tensor<E: Real>(v: impl Iterator<Item = f64>, channels: usize) -> FlexTensor {
    tensor_of(v.map(E::from64).collect::<Vec<E>>(), Shape::new([channels]))
}

fn train_typed<E: Real>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> BatchNormTrain<Flex> {
    let shape = x.shape();
    let g = geometry(&shape);
    let (x, gamma, beta) = (
        x.into_contiguous(),
        gamma.into_contiguous(),
        beta.into_contiguous(),
    );
    let st = stats::<E>(x.storage(), g);
    let out = normalise::<E>(
        x.storage(),
        g,
        &st,
        gamma.storage(),
        beta.storage(),
        epsilon,
    );
    BatchNormTrain::new(
        tensor_of(out, shape),
        channel_tensor::<E>(st.iter().map(|s| s.0), g.1),
        channel_tensor::<E>(st.iter().map(|s| s.1), g.1),
    )
}

fn apply_typed<E: Real>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let shape = x.shape();
    let g = geometry(&shape);
    let (mean, variance) = (mean.into_contiguous(), variance.into_contiguous());
    let st: Vec<(f64, f64)> = mean
        .storage::<E>()
        .iter()
        .zip(variance.storage::<E>())
        .map(|(m, v)| (m.to64(), v.to64()))
        .collect();
    let (x, gamma, beta) = (
        x.into_contiguous(),
        gamma.into_contiguous(),
        beta.into_contiguous(),
    );
    tensor_of(
        normalise::<E>(
            x.storage(),
            g,
            &st,
            gamma.storage(),
            beta.storage(),
            epsilon,
        ),
        shape,
    )
}

fn backward_typed<E: Real>(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    dy: FlexTensor,
) -> BatchNormTrainBackward<Flex> {
    let shape = x.shape();
    let g = geometry(&shape);
    let n = (g.0 * g.2) as f64;
    let (x, dy) = (x.into_contiguous(), dy.into_contiguous());
    let (gamma, mean, variance) = (
        gamma.into_contiguous(),
        mean.into_contiguous(),
        variance.into_contiguous(),
    );
    let (xs, dys): (&[E], &[E]) = (x.storage(), dy.storage());
    let (gs, ms, vs): (&[E], &[E], &[E]) = (gamma.storage(), mean.storage(), variance.storage());
    // Per channel: Σ dy and Σ dy·(x − mean), in f64.
    let sums = per_channel(g.1, |c| {
        let m = ms[c].to64();
        runs(xs, g, c)
            .zip(runs(dys, g, c))
            .map(|(xr, dr)| lane_sums2(xr, dr, m))
            .fold((0.0f64, 0.0f64), |(a, b), (u, v)| (a + u, b + v))
    });
    // dx = γ·inv·(dy − Σdy/n − x̂·Σ(dy·x̂)/n) = k1·dy + k2·(x − mean) + k3.
    let coef: Vec<(E, E, E, E)> = (0..g.1)
        .map(|c| {
            let inv = 1.0 / (vs[c].to64() + epsilon).sqrt();
            let (sdy, sdyx) = sums[c];
            let k1 = gs[c].to64() * inv;
            let k2 = -k1 * inv * inv * sdyx / n;
            let k3 = -k1 * sdy / n;
            (E::from64(k1), E::from64(k2), E::from64(k3), ms[c])
        })
        .collect();
    let mut dx = vec![E::from64(0.0); xs.len()];
    per_row(&mut dx, g.2, |r, o| {
        let (k1, k2, k3, m) = coef[r % g.1];
        let span = r * g.2..(r + 1) * g.2;
        for ((o, &xv), &dv) in o.iter_mut().zip(&xs[span.clone()]).zip(&dys[span]) {
            *o = k1 * dv + k2 * (xv - m) + k3;
        }
    });
    let gamma_grad = (0..g.1).map(|c| sums[c].1 / (vs[c].to64() + epsilon).sqrt());
    BatchNormTrainBackward::new(
        tensor_of(dx, shape),
        channel_tensor::<E>(gamma_grad, g.1),
        channel_tensor::<E>(sums.iter().map(|s| s.0), g.1),
    )
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

/// `ModuleOps::batch_norm_train`.
pub fn batch_norm_train(
    x: FloatTensor<Flex>,
    gamma: FloatTensor<Flex>,
    beta: FloatTensor<Flex>,
    epsilon: f64,
) -> BatchNormTrain<Flex> {
    match x.dtype() {
        DType::F32 => train_typed::<f32>(x, gamma, beta, epsilon),
        DType::F64 => train_typed::<f64>(x, gamma, beta, epsilon),
        dtype @ (DType::F16 | DType::BF16) => {
            let r = train_typed::<f32>(to_f32(x), to_f32(gamma), to_f32(beta), epsilon);
            BatchNormTrain::new(
                from_f32(r.output, dtype),
                from_f32(r.mean, dtype),
                from_f32(r.variance, dtype),
            )
        }
        dtype => panic!("burn_flex::batch_norm_train: unsupported dtype {:?}", dtype),
    }
}

/// `ModuleOps::batch_norm`.
pub fn batch_norm(
    x: FloatTensor<Flex>,
    gamma: FloatTensor<Flex>,
    beta: FloatTensor<Flex>,
    mean: FloatTensor<Flex>,
    variance: FloatTensor<Flex>,
    epsilon: f64,
) -> FloatTensor<Flex> {
    match x.dtype() {
        DType::F32 => apply_typed::<f32>(x, gamma, beta, mean, variance, epsilon),
        DType::F64 => apply_typed::<f64>(x, gamma, beta, mean, variance, epsilon),
        dtype @ (DType::F16 | DType::BF16) => from_f32(
            apply_typed::<f32>(
                to_f32(x),
                to_f32(gamma),
                to_f32(beta),
                to_f32(mean),
                to_f32(variance),
                epsilon,
            ),
            dtype,
        ),
        dtype => panic!("burn_flex::batch_norm: unsupported dtype {:?}", dtype),
    }
}

/// `ModuleOps::batch_norm_train_backward`.
pub fn batch_norm_train_backward(
    x: FloatTensor<Flex>,
    gamma: FloatTensor<Flex>,
    mean: FloatTensor<Flex>,
    variance: FloatTensor<Flex>,
    epsilon: f64,
    output_grad: FloatTensor<Flex>,
) -> BatchNormTrainBackward<Flex> {
    match x.dtype() {
        DType::F32 => backward_typed::<f32>(x, gamma, mean, variance, epsilon, output_grad),
        DType::F64 => backward_typed::<f64>(x, gamma, mean, variance, epsilon, output_grad),
        dtype @ (DType::F16 | DType::BF16) => {
            let r = backward_typed::<f32>(
                to_f32(x),
                to_f32(gamma),
                to_f32(mean),
                to_f32(variance),
                epsilon,
                to_f32(output_grad),
            );
            BatchNormTrainBackward::new(
                from_f32(r.x_grad, dtype),
                from_f32(r.gamma_grad, dtype),
                from_f32(r.beta_grad, dtype),
            )
        }
        dtype => panic!(
            "burn_flex::batch_norm_train_backward: unsupported dtype {:?}",
            dtype
        ),
    }
}
