//! Preconditioned networks: D(x; σ) = c_skip·x + c_out·F(c_in·x; c_noise) (EDM Eq. 7)
//! and the denoising score-matching loss of EDM Eq. 8 / Table 1.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::denoiser::{Conditioning, Denoiser};
use crate::precond::Precond;
use crate::tensor::{per_sample, tensor1};

/// A raw network F(x_in; c_noise, cond) on rank-`D` batches.
pub trait ScoreNetwork<const D: usize>: Module {
    /// F applied to the scaled input `c_in·x` with noise label `c_noise` (`[B]`).
    fn forward(
        &self,
        x_in: Tensor<D>,
        c_noise: Tensor<1>,
        cond: Option<&Conditioning>,
    ) -> Tensor<D>;
}

/// σ of a `[B]` tensor on the host, as float64 (a tiny read; every dtype converts).
fn host_sigmas(sigma: &Tensor<1>) -> Vec<f64> {
    sigma.clone().into_data().iter::<f64>().collect()
}

/// The four preconditioning coefficients as per-sample tensors `[B]`: the f64 formula
/// of [`Precond::coefficients`] (the one place they are written) evaluated per sample
/// and uploaded.
pub fn coefficient_tensors(p: &Precond, sigma: Tensor<1>) -> [Tensor<1>; 4] {
    let device = sigma.device();
    let cs: Vec<_> = host_sigmas(&sigma)
        .into_iter()
        .map(|s| p.coefficients(s))
        .collect();
    let col = |f: fn(&crate::precond::Coefficients) -> f64| {
        tensor1(&cs.iter().map(f).collect::<Vec<_>>(), &device)
    };
    [
        col(|c| c.c_skip),
        col(|c| c.c_out),
        col(|c| c.c_in),
        col(|c| c.c_noise),
    ]
}

/// EDM Eq. 7 for a network and a preconditioning.
pub fn precond_forward<const D: usize, N: ScoreNetwork<D>>(
    net: &N,
    p: &Precond,
    x: Tensor<D>,
    sigma: Tensor<1>,
    cond: Option<&Conditioning>,
) -> Tensor<D> {
    let [c_skip, c_out, c_in, c_noise] = coefficient_tensors(p, sigma);
    let f = net.forward(x.clone() * per_sample::<D>(c_in), c_noise, cond);
    x * per_sample::<D>(c_skip) + f * per_sample::<D>(c_out)
}

/// A network with its preconditioning: a [`Denoiser`].
#[derive(Debug, Clone)]
pub struct Preconditioned<'a, N> {
    /// The raw network F.
    pub net: &'a N,
    /// The preconditioning.
    pub precond: Precond,
}

impl<'a, N> Preconditioned<'a, N> {
    /// Wrap `net` with `precond`.
    pub fn new(net: &'a N, precond: Precond) -> Self {
        Self { net, precond }
    }
}

impl<const D: usize, N: ScoreNetwork<D>> Denoiser<D> for Preconditioned<'_, N> {
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, cond: Option<&Conditioning>) -> Tensor<D> {
        precond_forward(self.net, &self.precond, x, sigma, cond)
    }
}

/// Per-sample denoising loss λ(σ)·‖D(x₀ + σn; σ) − x₀‖² (EDM Eq. 8, summed over the
/// elements of each sample, as EDM's `loss.sum()`; training takes the mean over the
/// batch, EDM's division by the batch size): `[B]`. `sigma` is `[B]`, `noise` has the shape of `x0`.
pub fn denoising_loss<const D: usize, N: ScoreNetwork<D>>(
    net: &N,
    p: &Precond,
    x0: Tensor<D>,
    sigma: Tensor<1>,
    noise: Tensor<D>,
    cond: Option<&Conditioning>,
) -> Tensor<1> {
    let b = x0.dims()[0];
    let x = x0.clone() + noise * per_sample::<D>(sigma.clone());
    let d = precond_forward(net, p, x, sigma.clone(), cond);
    let weights: Vec<f64> = host_sigmas(&sigma)
        .into_iter()
        .map(|s| p.loss_weight(s))
        .collect();
    let weight = tensor1(&weights, &sigma.device());
    let per: Tensor<2> = (d - x0).powi_scalar(2).reshape([b as i64, -1]).sum_dim(1);
    per.reshape([b]) * weight
}
