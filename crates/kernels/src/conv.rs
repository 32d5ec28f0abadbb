//! The 2-D convolution as one backend extension and one autodiff node: on burn-flex the
//! NCHW kernels of [`crate::conv_flex`] (forward where they are the faster path, all
//! three gradients always); on other backends, and for dtypes other than f32, burn's
//! own `conv2d` and its backward operations.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::{Backend, Flex, TensorMetadata, backend_extension, tensor::FloatTensor};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, TensorData};

use crate::conv_flex::{self, Geometry};
use crate::math::values;

/// The convolution and its gradients on one execution backend. The default bodies are
/// burn's own operations; burn-flex overrides them for f32.
pub trait ConvKernel: Backend {
    /// `bias + x ⋆ weight` for `x: [N, C_in, H, W]`, `weight: [C_out, C_in/G, k_h, k_w]`.
    fn conv_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, bias, options)
    }

    /// The gradient of the input for the output gradient `grad`.
    fn conv_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, grad, options)
    }

    /// The gradient of the weight.
    fn conv_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, grad, options)
    }

    /// The gradient of the bias.
    fn conv_bias_grad(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::conv2d_bias_backward(x, bias, grad)
    }
}

/// The operation as burn dispatches it: with and without a bias (the extension's
/// arguments are tensors, not options of tensors).
#[backend_extension(Flex, Autodiff)]
pub trait ConvOps: Backend {
    /// See [`ConvKernel::conv_forward`], without a bias.
    fn scorelab_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// See [`ConvKernel::conv_forward`].
    fn scorelab_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

impl ConvOps for Flex {
    fn scorelab_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        Self::conv_forward(x, weight, None, options)
    }

    fn scorelab_conv2d_bias(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        Self::conv_forward(x, weight, Some(bias), options)
    }
}

fn dims4(s: &Shape) -> [usize; 4] {
    [s[0], s[1], s[2], s[3]]
}

fn all_f32(ts: &[&FlexTensor]) -> bool {
    ts.iter().all(|t| t.dtype() == DType::F32)
}

fn flex(v: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.into()))
}

/// The geometry of a convolution of `x` by a weight of shape `w` whose output gradient
/// (or output) has shape `out`.
fn geometry(x: &Shape, w: &Shape, out: &Shape, o: &ConvOptions<2>) -> Geometry {
    Geometry::new(dims4(x), dims4(w), dims4(out), o)
}

impl ConvKernel for Flex {
    fn conv_forward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: Option<FlexTensor>,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let (xs, ws) = (dims4(&x.shape()), dims4(&weight.shape()));
        let f32s = all_f32(&[&x, &weight]) && bias.as_ref().is_none_or(|b| b.dtype() == DType::F32);
        if !f32s || !conv_flex::prefers_nchw(xs, ws, &options) {
            return Self::conv2d(x, weight, bias, options);
        }
        let oh = conv_flex::out_len(xs[2], ws[2], 0, &options).unwrap_or(0);
        let ow = conv_flex::out_len(xs[3], ws[3], 1, &options).unwrap_or(0);
        let out = [xs[0], ws[0], oh, ow];
        let g = Geometry::new(xs, ws, out, &options);
        let b = bias.as_ref().map(values);
        let y = conv_flex::forward(&g, &values(&x), &values(&weight), b.as_deref());
        flex(y, out)
    }

    fn conv_x_grad(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        // Up to four input channels, burn-flex's transposed convolution is faster (the
        // UNet's first layer, 1 channel: 0.26 against 0.60 ms, `examples/conv_bench`).
        if !all_f32(&[&x, &weight, &grad]) || x.shape()[1] <= 4 {
            return Self::conv2d_x_backward(x, weight, grad, options);
        }
        let g = geometry(&x.shape(), &weight.shape(), &grad.shape(), &options);
        flex(
            conv_flex::x_grad(&g, &values(&weight), &values(&grad)),
            x.shape(),
        )
    }

    fn conv_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !all_f32(&[&x, &weight, &grad]) {
            return Self::conv2d_weight_backward(x, weight, grad, options);
        }
        let g = geometry(&x.shape(), &weight.shape(), &grad.shape(), &options);
        flex(
            conv_flex::weight_grad(&g, &values(&x), &values(&grad)),
            weight.shape(),
        )
    }

    fn conv_bias_grad(x: FlexTensor, bias: FlexTensor, grad: FlexTensor) -> FlexTensor {
        if !all_f32(&[&bias, &grad]) {
            return Self::conv2d_bias_backward(x, bias, grad);
        }
        let w = [bias.shape()[0], 1, 1, 1];
        let g = Geometry::new(
            dims4(&x.shape()),
            w,
            dims4(&grad.shape()),
            &ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        );
        flex(conv_flex::bias_grad(&g, &values(&grad)), bias.shape())
    }
}

/// The node: its state is the inputs (checkpointed) and the options; `N` is 3 with a
/// bias, 2 without.
#[derive(Debug)]
struct Conv<const N: usize>;

type ConvState = (NodeId, NodeId, Option<NodeId>, ConvOptions<2>);

impl<B: ConvKernel, const N: usize> Backward<B, N> for Conv<N> {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, ck: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, bias, options) = ops.state;
        let x = ck.retrieve_node_output::<FloatTensor<B>>(x);
        let weight = ck.retrieve_node_output::<FloatTensor<B>>(weight);
        let parents = ops.parents;
        if let Some(node) = &parents[0] {
            let (x, w, dy, o) = (x.clone(), weight.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, B::conv_x_grad(x, w, dy, o));
        }
        if let Some(node) = &parents[1] {
            let dw = B::conv_weight_grad(x.clone(), weight, grad.clone(), options);
            grads.register::<B>(node.id, dw);
        }
        if let (Some(node), Some(bias)) = (parents.get(2).and_then(|p| p.as_ref()), bias) {
            let bias = ck.retrieve_node_output::<FloatTensor<B>>(bias);
            grads.register::<B>(node.id, B::conv_bias_grad(x, bias, grad));
        }
    }
}

impl<B: ConvKernel, C: CheckpointStrategy> ConvOps for Autodiff<B, C> {
    fn scorelab_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match Conv::<2>
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let (xs, ws) = (prep.checkpoint(&x), prep.checkpoint(&weight));
                let state = (xs, ws, None, options.clone());
                prep.finish(state, forward::<B, C>(x, weight, None, options))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward::<B, C>(x, weight, None, options)),
        }
    }

    fn scorelab_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node(), bias.node()];
        match Conv::<3>.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let (xs, ws) = (prep.checkpoint(&x), prep.checkpoint(&weight));
                let state = (xs, ws, Some(prep.checkpoint(&bias)), options.clone());
                prep.finish(state, forward::<B, C>(x, weight, Some(bias), options))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward::<B, C>(x, weight, Some(bias), options))
            }
        }
    }
}

/// The inner backend's forward pass on the autodiff tensors' primitives.
fn forward<B: ConvKernel, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
    options: ConvOptions<2>,
) -> FloatTensor<B> {
    let bias = bias.map(|b| b.into_primitive());
    B::conv_forward(x.into_primitive(), weight.into_primitive(), bias, options)
}
