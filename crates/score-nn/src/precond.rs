//! Preconditioned networks: D(x; σ) = c_skip·x + c_out·F(c_in·x; c_noise) (EDM Eq. 7)
//! and the denoising score-matching loss of EDM Eq. 8 / Table 1.

use burn::module::Module;
use burn::tensor::Tensor;

use score_core::denoiser::{Conditioning, Denoiser};
use score_core::precond::Precond;
use score_core::tensor::{per_sample, tensor1};

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
    let col = |f: fn(&score_core::precond::Coefficients) -> f64| {
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
    let x = x0.clone() + noise * per_sample::<D>(sigma.clone());
    regression_loss(net, p, x, sigma, x0, cond)
}

/// The loss every objective shares: λ(σ)·‖D(y; σ, cond) − target‖² per sample, summed
/// over its elements: `[B]`. Plain denoising has y = x₀ + σn and target x₀; ScoreAug
/// and non-leaky augmentation change y and the target (`train::Objective`).
pub fn regression_loss<const D: usize, N: ScoreNetwork<D>>(
    net: &N,
    p: &Precond,
    input: Tensor<D>,
    sigma: Tensor<1>,
    target: Tensor<D>,
    cond: Option<&Conditioning>,
) -> Tensor<1> {
    weighted_regression_loss(net, p, (input, sigma, target), cond, None)
}

/// [`regression_loss`] with each squared error multiplied by `weight` (shape
/// `[1, …]`, the same for every sample, broadcast over the batch) before the sum:
/// λ(σ)·Σ w·(D(y; σ, cond) − target)². `None` is a weight of 1 everywhere.
pub fn weighted_regression_loss<const D: usize, N: ScoreNetwork<D>>(
    net: &N,
    p: &Precond,
    (input, sigma, target): (Tensor<D>, Tensor<1>, Tensor<D>),
    cond: Option<&Conditioning>,
    weight: Option<Tensor<D>>,
) -> Tensor<1> {
    let b = input.dims()[0];
    let d = precond_forward(net, p, input, sigma.clone(), cond);
    let weights: Vec<f64> = host_sigmas(&sigma)
        .into_iter()
        .map(|s| p.loss_weight(s))
        .collect();
    let lambda = tensor1(&weights, &sigma.device());
    let sq = (d - target).powi_scalar(2);
    let sq = match weight {
        Some(w) => sq * w,
        None => sq,
    };
    let per: Tensor<2> = sq.reshape([b as i64, -1]).sum_dim(1);
    per.reshape([b]) * lambda
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::MlpConfig;
    use burn::tensor::Device;
    use score_core::tensor::{from_f64, randn, stream_rng, to_vec_f64};

    /// EDM Eq. 7 and the loss of Eq. 8 on (float32) tensors against the float64 scalar
    /// formulas of `Precond`, for EDM, VP and VE. float32 rounds at 6e-8 per operation;
    /// over the ~10 operations of a coefficient and a product that is below 1e-6
    /// relative, so 1e-5 of the magnitudes involved is allowed.
    #[test]
    fn tensor_preconditioning_and_loss_match_the_scalar_reference() {
        let device = Device::flex();
        let net = MlpConfig::new(3)
            .with_hidden(8)
            .with_blocks(1)
            .init(&device);
        let sig = [0.01, 0.3, 2.0, 40.0];
        let xs: Vec<f64> = to_vec_f64(randn([4, 3], &mut stream_rng(1, 0, 0), &device))
            .unwrap()
            .into_iter()
            .map(|v| v * 2.0)
            .collect();
        let x0s: Vec<f64> = xs.iter().map(|v| 0.3 * v - 0.1).collect();
        for p in [Precond::edm(0.7), Precond::vp(), Precond::ve()] {
            let t = |v: &[f64], shape: [usize; 2]| from_f64(v, shape, &device);
            let sigma = from_f64(&sig, [4], &device);
            let d = to_vec_f64(precond_forward(
                &net,
                &p,
                t(&xs, [4, 3]),
                sigma.clone(),
                None,
            ))
            .unwrap();
            // F on the scaled inputs, one sample at a time, with the scalar c_in, c_noise.
            for (i, &s) in sig.iter().enumerate() {
                let c = p.coefficients(s);
                let row: Vec<f64> = xs[3 * i..3 * i + 3].iter().map(|v| v * c.c_in).collect();
                let f = to_vec_f64(net.forward(
                    t(&row, [1, 3]),
                    from_f64(&[c.c_noise], [1], &device),
                    None,
                ))
                .unwrap();
                for j in 0..3 {
                    let want = c.c_skip * xs[3 * i + j] + c.c_out * f[j];
                    let got = d[3 * i + j];
                    let scale = (c.c_skip * xs[3 * i + j]).abs() + (c.c_out * f[j]).abs();
                    assert!(
                        (got - want).abs() <= 1e-5 * scale.max(1e-3),
                        "{p:?} σ {s}: {got} vs {want}"
                    );
                }
            }
            // The loss: λ(σ)·Σ_pixels (D(x₀ + σn) − x₀)², per sample.
            let noise: Vec<f64> = xs.iter().map(|v| v / 2.0).collect();
            let loss = to_vec_f64(denoising_loss(
                &net,
                &p,
                t(&x0s, [4, 3]),
                sigma,
                t(&noise, [4, 3]),
                None,
            ))
            .unwrap();
            let noisy: Vec<f64> = (0..12).map(|q| x0s[q] + sig[q / 3] * noise[q]).collect();
            let sigma = from_f64(&sig, [4], &device);
            let dn = to_vec_f64(precond_forward(&net, &p, t(&noisy, [4, 3]), sigma, None)).unwrap();
            for (i, &s) in sig.iter().enumerate() {
                let sq: f64 = (0..3)
                    .map(|j| (dn[3 * i + j] - x0s[3 * i + j]).powi(2))
                    .sum();
                let want = p.loss_weight(s) * sq;
                // Rounding of D − x₀ is relative to |D| + |x₀|, squared and weighted.
                let mag: f64 = (0..3)
                    .map(|j| (dn[3 * i + j].abs() + x0s[3 * i + j].abs()).powi(2))
                    .sum();
                let tol = 1e-5 * p.loss_weight(s) * mag;
                assert!(
                    (loss[i] - want).abs() <= tol,
                    "{p:?} σ {s}: {} vs {want}",
                    loss[i]
                );
            }
            // Weighted: λ(σ)·Σ w_j (D − x₀)², the weight `[1, 3]` shared by the batch.
            let w = [1.0, 2.0, 0.5];
            let weighted = to_vec_f64(weighted_regression_loss(
                &net,
                &p,
                (
                    t(&noisy, [4, 3]),
                    from_f64(&sig, [4], &device),
                    t(&x0s, [4, 3]),
                ),
                None,
                Some(t(&w, [1, 3])),
            ))
            .unwrap();
            for (i, &s) in sig.iter().enumerate() {
                let sq: f64 = (0..3)
                    .map(|j| w[j] * (dn[3 * i + j] - x0s[3 * i + j]).powi(2))
                    .sum();
                let want = p.loss_weight(s) * sq;
                let mag: f64 = (0..3)
                    .map(|j| w[j] * (dn[3 * i + j].abs() + x0s[3 * i + j].abs()).powi(2))
                    .sum();
                let tol = 1e-5 * p.loss_weight(s) * mag;
                assert!(
                    (weighted[i] - want).abs() <= tol,
                    "{p:?} σ {s}: {} vs {want}",
                    weighted[i]
                );
            }
        }
    }
}
