//! The fused operation as one autodiff node: forward on the inner backend's kernel, and
//! a hand-written backward pass that calls the inner backend's fused backward
//! ([`crate::GroupNormKernel::gn_backward`]) once for all three gradients.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;

use crate::{GroupNormKernel, GroupNormOps};

/// The node: its state is the three inputs (checkpointed) and the settings.
#[derive(Debug)]
struct FusedGroupNorm;

impl<B: GroupNormKernel> Backward<B, 3> for FusedGroupNorm {
    type State = (NodeId, NodeId, NodeId, usize, f64, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, ck: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, groups, eps, silu) = ops.state;
        let x = ck.retrieve_node_output::<FloatTensor<B>>(x);
        let gamma = ck.retrieve_node_output::<FloatTensor<B>>(gamma);
        let beta = ck.retrieve_node_output::<FloatTensor<B>>(beta);
        let d = B::gn_backward(x, gamma, beta, grad, groups, eps, silu);
        for (node, g) in [(node_x, d.x), (node_gamma, d.gamma), (node_beta, d.beta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: GroupNormKernel, C: CheckpointStrategy> GroupNormOps for Autodiff<B, C> {
    fn fused_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FloatTensor<Self> {
        let forward = |x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>| {
            let (x, g, b) = (
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
            );
            B::gn_forward(x, g, b, groups, eps, silu)
        };
        match FusedGroupNorm
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let inputs = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&gamma),
                    prep.checkpoint(&beta),
                );
                let state = (inputs.0, inputs.1, inputs.2, groups, eps, silu);
                prep.finish(state, forward(x, gamma, beta))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x, gamma, beta)),
        }
    }
}
