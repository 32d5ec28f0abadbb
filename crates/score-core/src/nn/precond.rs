//! Preconditioned networks: D(x; σ) = c_skip·x + c_out·F(c_in·x; c_noise) (EDM Eq. 7)
//! and the denoising score-matching loss of EDM Eq. 8 / Table 1.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::denoiser::{Conditioning, Denoiser};
use crate::precond::Precond;
use crate::tensor::per_sample;

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

/// The four preconditioning coefficients as per-sample tensors `[B]`.
pub fn coefficient_tensors(p: &Precond, sigma: Tensor<1>) -> [Tensor<1>; 4] {
    match *p {
        Precond::Edm { sigma_data: sd, .. } => {
            let s2 = sigma.clone().powi_scalar(2).add_scalar(sd * sd);
            let c_skip = s2.clone().recip().mul_scalar(sd * sd);
            let c_out = sigma.clone().mul_scalar(sd) / s2.clone().sqrt();
            let c_in = s2.sqrt().recip();
            let c_noise = sigma.log().mul_scalar(0.25);
            [c_skip, c_out, c_in, c_noise]
        }
        Precond::Vp { schedule, m, .. } => {
            let s2 = sigma.clone().powi_scalar(2);
            let c_skip = sigma.ones_like();
            let c_out = sigma.clone().neg();
            let c_in = s2.clone().add_scalar(1.0).sqrt().recip();
            let (bd, bm) = (schedule.beta_d, schedule.beta_min);
            let t = s2
                .add_scalar(1.0)
                .log()
                .mul_scalar(2.0 * bd)
                .add_scalar(bm * bm)
                .sqrt()
                .sub_scalar(bm)
                .div_scalar(bd);
            [c_skip, c_out, c_in, t.mul_scalar(m - 1.0)]
        }
        Precond::Ve { .. } => {
            let c_noise = sigma.clone().mul_scalar(0.5).log();
            [sigma.ones_like(), sigma.clone(), sigma.ones_like(), c_noise]
        }
    }
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

/// Per-sample denoising loss λ(σ)·mean‖D(x₀ + σn; σ) − x₀‖² (EDM Eq. 8, averaged over
/// the elements of each sample): `[B]`. `sigma` is `[B]`, `noise` has the shape of `x0`.
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
    let weight = match *p {
        Precond::Edm { sigma_data: sd, .. } => {
            let s2 = sigma.clone().powi_scalar(2);
            s2.clone().add_scalar(sd * sd) / s2.mul_scalar(sd * sd)
        }
        _ => sigma.powi_scalar(2).recip(),
    };
    let per: Tensor<2> = (d - x0).powi_scalar(2).reshape([b as i64, -1]).mean_dim(1);
    per.reshape([b]) * weight
}
