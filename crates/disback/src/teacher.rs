//! Teachers and the one-step generator.

use burn::tensor::Tensor;
use score_core::{Denoiser, Precond};
use score_nn::Preconditioned;
use score_nn::precond::{ScoreNetwork, precond_forward};

/// The teacher of a distillation: the denoiser the generator is distilled from, and
/// the network whose weights seed the generator, the fake score s_φ and Stage 1's s′.
/// For a network teacher the two are the same; an analytic teacher (an exact mixture
/// denoiser) has no weights, so it is first fitted by a network (trained by DSM on its
/// samples) and that network seeds the copies, while the targets stay exact.
pub struct Teacher<'a, const D: usize, N> {
    /// The network on the training (autodiff) device.
    pub net: N,
    /// Its plain (no autodiff) copy, used for evaluation.
    pub eval: N,
    /// The teacher's (and every copy's) preconditioning.
    pub precond: Precond,
    /// An exact denoiser the targets use instead of the network (teacher A of the spec).
    pub exact: Option<&'a dyn Denoiser<D>>,
}

impl<'a, const D: usize, N: ScoreNetwork<D>> Teacher<'a, D, N> {
    /// A network teacher (created or loaded on an autodiff device).
    pub fn network(net: N, precond: Precond) -> Self {
        Self {
            eval: net.valid(),
            net,
            precond,
            exact: None,
        }
    }

    /// An analytic teacher `exact`, with `fitted` (a network fitted to it) for the weights.
    pub fn analytic(exact: &'a dyn Denoiser<D>, fitted: N, precond: Precond) -> Self {
        Self {
            exact: Some(exact),
            ..Self::network(fitted, precond)
        }
    }

    /// The target denoiser s′₀: the exact one when given, else the network.
    pub fn denoiser(&self) -> Box<dyn Denoiser<D> + '_> {
        match self.exact {
            Some(d) => Box::new(d),
            None => Box::new(Preconditioned::new(&self.eval, self.precond)),
        }
    }

    /// What the checkpoints record about the teacher.
    pub fn describe(&self) -> &'static str {
        if self.exact.is_some() {
            "analytic (targets exact; weights of a fitted network)"
        } else {
            "network"
        }
    }
}

/// The one-step generator G(z) = D(σ_gen·z; σ_gen) of a network `net` with
/// preconditioning `precond` (DMD2's convention: a denoiser used at its largest σ),
/// for z ~ N(0, I) `[B, …]`. One network evaluation.
pub fn generate<const D: usize, N: ScoreNetwork<D>>(
    net: &N,
    precond: &Precond,
    sigma_gen: f64,
    z: Tensor<D>,
) -> Tensor<D> {
    let b = z.dims()[0];
    let sigma = score_core::tensor::sigma_tensor(sigma_gen, b, &z.device());
    precond_forward(net, precond, z.mul_scalar(sigma_gen), sigma, None)
}

pub use score_train::pipeline::ONE_STEP_NAME;
