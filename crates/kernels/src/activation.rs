//! SiLU, x·sigmoid(x), as one operation and one autodiff node: on burn-flex one
//! parallel pass each way with the vectorising e^x of [`crate::math::exp_f32`]; on
//! other backends burn's own `sigmoid` and products.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::{
    Backend, Flex, Scalar, TensorMetadata, backend_extension, tensor::FloatTensor,
};
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use crate::math::{sigmoid_f32, silu_grad_f32, values, vectorized};

/// SiLU and its backward pass on one execution backend; the default bodies compose
/// burn's primitives, burn-flex overrides both.
pub trait SiluKernel: Backend {
    /// x·sigmoid(x).
    fn silu_forward(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_forward::<Self>(x)
    }

    /// dy·s·(1 + x(1 − s)) with s = sigmoid(x).
    fn silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_backward::<Self>(x, grad)
    }
}

/// [`SiluKernel::silu_forward`] from burn's primitives.
pub fn composed_forward<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::float_mul(x.clone(), B::sigmoid(x))
}

/// [`SiluKernel::silu_backward`] from burn's primitives.
pub fn composed_backward<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let s = B::sigmoid(x.clone());
    let one_minus = B::float_add_scalar(B::float_neg(s.clone()), Scalar::from(1.0));
    let inner = B::float_add_scalar(B::float_mul(x, one_minus), Scalar::from(1.0));
    B::float_mul(grad, B::float_mul(s, inner))
}

/// The operation as burn dispatches it.
#[backend_extension(Flex, Cube: cfg(feature = "cube"), Autodiff, Fusion: cfg(feature = "fusion"))]
pub trait SiluOps: Backend {
    /// See [`SiluKernel::silu_forward`].
    #[fusion(dtype = x, shape = x)]
    fn fused_silu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`SiluKernel::silu_backward`]. Only burn's fusion calls it (through
    /// [`SiluKernel`] on `Fusion<B>`); the default composes burn's primitives.
    #[fusion(dtype = x, shape = x)]
    fn fused_silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_backward::<Self>(x, grad)
    }
}

impl SiluOps for Flex {
    fn fused_silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::silu_forward(x)
    }

    fn fused_silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::silu_backward(x, grad)
    }
}

/// Elements per parallel task: large enough that a task outweighs its scheduling.
const CHUNK: usize = 16 * 1024;

impl SiluKernel for Flex {
    fn silu_forward(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return composed_forward::<Flex>(x);
        }
        let shape = x.shape();
        let xs = values(&x);
        let mut out = vec![0.0f32; xs.len()];
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(o, x)| {
                vectorized(|| {
                    for (o, &v) in o.iter_mut().zip(x) {
                        *o = v * sigmoid_f32(v);
                    }
                })
            });
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    fn silu_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
            return composed_backward::<Flex>(x, grad);
        }
        let shape = x.shape();
        let (xs, dys) = (values(&x), values(&grad));
        let mut out = vec![0.0f32; xs.len()];
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK).zip(dys.par_chunks(CHUNK)))
            .for_each(|(o, (x, dy))| {
                vectorized(|| {
                    for ((o, &v), &d) in o.iter_mut().zip(x).zip(dy) {
                        *o = d * silu_grad_f32(v);
                    }
                })
            });
        FlexTensor::from_data(TensorData::new(out, shape))
    }
}

/// The node: its state is the input, checkpointed.
#[derive(Debug)]
struct FusedSilu;

impl<B: SiluKernel> Backward<B, 1> for FusedSilu {
    type State = NodeId;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, ck: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let x = ck.retrieve_node_output::<FloatTensor<B>>(ops.state);
        if let Some(node) = node {
            grads.register::<B>(node.id, B::silu_backward(x, grad));
        }
    }
}

impl<B: SiluKernel, C: CheckpointStrategy> SiluOps for Autodiff<B, C> {
    fn fused_silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match FusedSilu
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::silu_forward(x.into_primitive()))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::silu_forward(x.into_primitive())),
        }
    }
}
