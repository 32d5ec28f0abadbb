//! 2× resampling of `[N, C, H, W]` maps, as the UNet and the autoencoder do it: nearest
//! upsampling (each value copied into its 2×2 block) and 2×2 average pooling. Each is
//! one operation and one autodiff node, and each one's backward pass is the other's
//! kernel with a scale: the upsampling's gradient is the 2×2 block sum, the pooling's
//! is the gradient spread over the block times ¼.
//!
//! On burn-flex both are one parallel pass over the planes (burn's composition, an
//! expanded view copied element by element and two means over inner axes, walks
//! strided indices). The pooled value is `((a + b) + (c + d))·¼` with `a, b` the block's
//! top row: the same bits as the composition's two means, since halving is exact.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::{
    Backend, Flex, Scalar, TensorMetadata, backend_extension, tensor::FloatTensor,
};
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

use crate::math::values;

/// The two kernels on one execution backend; the default bodies compose burn's
/// primitives, burn-flex overrides both for f32.
pub trait ResampleKernel: Backend {
    /// `[N, C, H, W] → [N, C, 2H, 2W]`: `scale·x` copied into each 2×2 block.
    fn spread2x(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        composed_spread::<Self>(x, scale)
    }

    /// `[N, C, 2H, 2W] → [N, C, H, W]`: `scale·((a + b) + (c + d))` per 2×2 block.
    fn pool2x(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        composed_pool::<Self>(x, scale)
    }
}

/// [`ResampleKernel::spread2x`] from burn's primitives: an expanded view, copied.
pub fn composed_spread<B: Backend>(x: FloatTensor<B>, scale: f64) -> FloatTensor<B> {
    let s = x.shape();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let v = B::float_reshape(x, Shape::new([n, c, h, 1, w, 1]));
    let v = B::float_expand(v, Shape::new([n, c, h, 2, w, 2]));
    scaled::<B>(B::float_reshape(v, Shape::new([n, c, 2 * h, 2 * w])), scale)
}

/// [`ResampleKernel::pool2x`] from burn's primitives: two sums over inner axes.
pub fn composed_pool<B: Backend>(x: FloatTensor<B>, scale: f64) -> FloatTensor<B> {
    let s = x.shape();
    let (n, c, h, w) = (s[0], s[1], s[2] / 2, s[3] / 2);
    let v = B::float_reshape(x, Shape::new([n, c, h, 2, w, 2]));
    let v = B::float_sum_dim(B::float_sum_dim(v, 5), 3);
    scaled::<B>(B::float_reshape(v, Shape::new([n, c, h, w])), scale)
}

fn scaled<B: Backend>(x: FloatTensor<B>, scale: f64) -> FloatTensor<B> {
    match scale == 1.0 {
        true => x,
        false => B::float_mul_scalar(x, Scalar::from(scale)),
    }
}

/// The operations as burn dispatches them.
#[backend_extension(Flex, Autodiff)]
pub trait ResampleOps: Backend {
    /// Nearest 2× upsampling, [`ResampleKernel::spread2x`] with scale 1.
    fn scorelab_upsample2x(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// 2×2 average pooling, [`ResampleKernel::pool2x`] with scale ¼.
    fn scorelab_downsample2x(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl ResampleOps for Flex {
    fn scorelab_upsample2x(x: FlexTensor) -> FlexTensor {
        Self::spread2x(x, 1.0)
    }
    fn scorelab_downsample2x(x: FlexTensor) -> FlexTensor {
        Self::pool2x(x, 0.25)
    }
}

impl ResampleKernel for Flex {
    fn spread2x(x: FlexTensor, scale: f64) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return composed_spread::<Flex>(x, scale);
        }
        let s = x.shape();
        let (h, w) = (s[2], s[3]);
        let xs = values(&x);
        let k = scale as f32;
        let mut out = vec![0.0f32; xs.len() * 4];
        out.par_chunks_mut(4 * h * w)
            .zip(xs.par_chunks(h * w))
            .for_each(|(o, p)| {
                for (rows, src) in o.chunks_exact_mut(4 * w).zip(p.chunks_exact(w)) {
                    let (top, bottom) = rows.split_at_mut(2 * w);
                    for (pair, v) in top.chunks_exact_mut(2).zip(src) {
                        pair.fill(v * k);
                    }
                    bottom.copy_from_slice(top);
                }
            });
        FlexTensor::from_data(TensorData::new(out, [s[0], s[1], 2 * h, 2 * w]))
    }

    fn pool2x(x: FlexTensor, scale: f64) -> FlexTensor {
        let s = x.shape();
        if x.dtype() != DType::F32 || !s[2].is_multiple_of(2) || !s[3].is_multiple_of(2) {
            return composed_pool::<Flex>(x, scale);
        }
        let (h, w) = (s[2] / 2, s[3] / 2);
        let xs = values(&x);
        let k = scale as f32;
        let mut out = vec![0.0f32; xs.len() / 4];
        out.par_chunks_mut(h * w)
            .zip(xs.par_chunks(4 * h * w))
            .for_each(|(o, p)| {
                for (dst, rows) in o.chunks_exact_mut(w).zip(p.chunks_exact(4 * w)) {
                    let (top, bottom) = rows.split_at(2 * w);
                    let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2));
                    for (d, (t, b)) in dst.iter_mut().zip(pairs) {
                        *d = ((t[0] + t[1]) + (b[0] + b[1])) * k;
                    }
                }
            });
        FlexTensor::from_data(TensorData::new(out, [s[0], s[1], h, w]))
    }
}

/// The upsampling's node: the gradient is the 2×2 block sum.
#[derive(Debug)]
struct Up;

/// The pooling's node: the gradient spread over the block, times ¼.
#[derive(Debug)]
struct Down;

impl<B: ResampleKernel> Backward<B, 1> for Up {
    type State = ();
    fn backward(self, ops: Ops<(), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        if let [Some(node)] = ops.parents {
            grads.register::<B>(node.id, B::pool2x(grad, 1.0));
        }
    }
}

impl<B: ResampleKernel> Backward<B, 1> for Down {
    type State = ();
    fn backward(self, ops: Ops<(), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        if let [Some(node)] = ops.parents {
            grads.register::<B>(node.id, B::spread2x(grad, 0.25));
        }
    }
}

impl<B: ResampleKernel, C: CheckpointStrategy> ResampleOps for Autodiff<B, C> {
    fn scorelab_upsample2x(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let node = x.node();
        let out = B::spread2x(x.into_primitive(), 1.0);
        Up.prepare::<C>([node]).compute_bound().stateless(out)
    }
    fn scorelab_downsample2x(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let node = x.node();
        let out = B::pool2x(x.into_primitive(), 0.25);
        Down.prepare::<C>([node]).compute_bound().stateless(out)
    }
}
