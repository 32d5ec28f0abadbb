//! The theory of ScoreAug as code.
//!
//! For an invertible linear transform T (matrix A), y = A(x₀ + σn) = Ax₀ + σAn and the
//! optimal denoiser with target Ax₀ is D_aug(y; σ, ω) = E[Ax₀ | y] = A·D(A⁻¹y; σ): exactly
//! equivariant. Its score is ∇_y log q(y) = A^{−T} ∇ₓ log p_σ(A⁻¹y).
//!
//! Orthogonal transforms (rot90, flips) leave the added noise N(0, σ²I); brightness
//! (A = sI) scales it, and zero padding or cutout leave noise-free pixels, so those are
//! visible in the input. [`noise_statistic`] measures that.

use burn::tensor::Tensor;
use score_core::tensor::{from_f32, to_vec_f32};
use score_core::{Conditioning, Denoiser};

use crate::error::Result;
use crate::transforms::{OMEGA_DIM, Params};

/// A·D(A⁻¹y; σ) for one image `y` `[c, h, w]` in f64, with `d` the denoiser of the
/// untransformed distribution at the noise level of interest.
pub fn equivariant_denoise(
    d: impl Fn(&[f64]) -> Vec<f64>,
    t: &Params,
    y: &[f64],
    [c, h, w]: [usize; 3],
) -> Result<Vec<f64>> {
    let x = t.apply_inverse(y, c, h, w)?;
    t.apply(&d(&x), c, h, w)
}

/// The optimal ScoreAug denoiser built from any image [`Denoiser`] of the clean
/// distribution: it reads ScoreAug's ω from `cond.augment` (slots 8–15, as the
/// objective writes them; absent means identity), undoes the transform, denoises and
/// transforms back. Only invertible ω (flips, rot90, brightness) are accepted.
pub struct Equivariant<D> {
    /// The denoiser of the untransformed distribution.
    pub inner: D,
}

fn transforms_of(cond: Option<&Conditioning>, b: usize) -> Result<Vec<Params>> {
    let Some(aug) = cond.and_then(|c| c.augment.clone()) else {
        return Ok(vec![Params::default(); b]);
    };
    let dim = aug.dims()[1];
    let om = to_vec_f32(aug)?;
    (0..b)
        .map(|i| {
            let row = &om[i * dim..(i + 1) * dim];
            let sa = if dim >= 2 * OMEGA_DIM {
                &row[OMEGA_DIM..2 * OMEGA_DIM]
            } else {
                row
            };
            Params::from_omega(sa)
        })
        .collect()
}

impl<D: Denoiser<4>> Denoiser<4> for Equivariant<D> {
    fn denoise(&self, x: Tensor<4>, sigma: Tensor<1>, cond: Option<&Conditioning>) -> Tensor<4> {
        let device = x.device();
        let [b, c, h, w] = x.dims();
        let per = c * h * w;
        let ts = transforms_of(cond, b).expect("invertible ScoreAug parameters");
        let xs = to_vec_f32(x).expect("float tensor");
        let back: Vec<f32> = (0..b)
            .flat_map(|i| {
                ts[i]
                    .apply_inverse(&xs[i * per..(i + 1) * per], c, h, w)
                    .expect("checked")
            })
            .collect();
        let inner_cond = cond.map(|c| Conditioning {
            augment: None,
            ..c.clone()
        });
        let d = to_vec_f32(self.inner.denoise(
            from_f32(back, [b, c, h, w], &device),
            sigma,
            inner_cond.as_ref(),
        ))
        .expect("float tensor");
        let out: Vec<f32> = (0..b)
            .flat_map(|i| {
                ts[i]
                    .apply(&d[i * per..(i + 1) * per], c, h, w)
                    .expect("checked")
            })
            .collect();
        from_f32(out, [b, c, h, w], &device)
    }
}

/// Z = (Σ r²/σ² − N)/√(2N) for residuals r = y − T(x₀) over N pixels: if r ~ N(0, σ²I)
/// (the noise is untouched by T), Σ r²/σ² ~ χ²_N with mean N and variance 2N, so Z is
/// approximately standard normal. A transform that scales the noise by s shifts Z by
/// (s² − 1)√(N/2); one that zeroes a fraction f of the pixels shifts it by −f√(N/2).
pub fn noise_statistic(residual: &[f64], sigma: f64) -> f64 {
    let n = residual.len() as f64;
    let chi2: f64 = residual.iter().map(|r| (r / sigma).powi(2)).sum();
    (chi2 - n) / (2.0 * n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::{Kind, Ranges, draw};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Distribution, StandardNormal};
    use score_core::mixture::GaussianMixture;

    /// A Gaussian mixture on 1×2×2 images.
    fn mixture() -> GaussianMixture {
        let mut rng = StdRng::seed_from_u64(4);
        GaussianMixture::random(3, 4, 1.5, 0.3, &mut rng).unwrap()
    }

    #[test]
    fn the_equivariant_denoiser_has_the_transformed_score() {
        // ∇_y log q(y) from the denoiser, (D_aug(y) − y)/(s σ)² for y = A(x₀ + σn) with
        // A = sI (brightness) or a rotation (s = 1), against central differences of the
        // exact log q(y) = log p_σ(A⁻¹y) − log|det A|. Central differences err by
        // O(h²·f''') ≈ 1e-10 at h = 1e-5, so 1e-6 is a safe bound (as score-core's
        // mixture test).
        let gm = mixture();
        let shape = [1, 2, 2];
        let y = [0.4, -1.1, 0.9, 0.2];
        for t in [
            Params {
                brightness: 1.2,
                ..Params::default()
            },
            Params {
                brightness: 1.0 / 1.2,
                ..Params::default()
            },
            Params {
                rot: 1,
                ..Params::default()
            },
            Params {
                rot: 3,
                flip_h: true,
                brightness: 1.1,
                ..Params::default()
            },
        ] {
            for sigma in [0.1, 0.7, 3.0] {
                let s = t.brightness;
                let d = equivariant_denoise(|x| gm.denoise_f64(x, sigma), &t, &y, shape).unwrap();
                let log_q = |v: &[f64]| {
                    let x = t.apply_inverse(v, 1, 2, 2).unwrap();
                    gm.log_prob(&x, sigma) - 4.0 * s.ln()
                };
                // A^{−T} ∇ log p_σ(A⁻¹y): for A = s·Q with Q orthogonal, A^{−T} = Q/s = A/s².
                let x = t.apply_inverse(&y, 1, 2, 2).unwrap();
                let rel = t.apply(&gm.score_f64(&x, sigma), 1, 2, 2).unwrap();
                for j in 0..4 {
                    let h = 1e-5;
                    let (mut a, mut b) = (y, y);
                    a[j] += h;
                    b[j] -= h;
                    let fd = (log_q(&a) - log_q(&b)) / (2.0 * h);
                    let from_d = (d[j] - y[j]) / (s * sigma).powi(2);
                    let tol = 1e-6 * fd.abs().max(1.0);
                    assert!(
                        (from_d - fd).abs() <= tol,
                        "{t:?} σ {sigma}: {from_d} vs {fd}"
                    );
                    assert!(
                        (rel[j] / (s * s) - fd).abs() <= tol,
                        "{t:?} σ {sigma}: relation"
                    );
                }
            }
        }
    }

    #[test]
    fn only_orthogonal_transforms_hide_in_the_noise() {
        // 256 images of 16×16 (N = 65 536 pixels, √(N/2) = 181), σ = 0.5. With the noise
        // untouched Z ≈ N(0, 1), so |Z| < 5 fails with probability 6e-7. The derived
        // shifts: brightness 1.2 → +0.44·181 = +79.6; a 2-pixel shift zeroes f = 1/8 of
        // each image → −22.6; a 4×4 cutout (the default side 1/4) zeroes 1/16 → −11.3.
        // Each is checked to within 5 of its prediction, and all lie beyond |Z| = 5.
        let (b, c, h, w, sigma) = (256, 1, 16, 16, 0.5);
        let mut rng = StdRng::seed_from_u64(11);
        let x0: Vec<f64> = (0..b * c * h * w)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let n: Vec<f64> = (0..x0.len())
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let z_of = |t: Params| {
            let per = c * h * w;
            let mut r = Vec::with_capacity(x0.len());
            for i in 0..b {
                let xi = &x0[i * per..(i + 1) * per];
                let noisy: Vec<f64> = xi
                    .iter()
                    .zip(&n[i * per..(i + 1) * per])
                    .map(|(a, e)| a + sigma * e)
                    .collect();
                let (ty, tx) = (
                    t.apply(&noisy, c, h, w).unwrap(),
                    t.apply(xi, c, h, w).unwrap(),
                );
                r.extend(ty.iter().zip(&tx).map(|(a, b)| a - b));
            }
            noise_statistic(&r, sigma)
        };
        let none = z_of(Params::default());
        assert!(none.abs() < 5.0, "{none}");
        for t in [
            Params {
                rot: 1,
                ..Params::default()
            },
            Params {
                rot: 2,
                flip_v: true,
                ..Params::default()
            },
            Params {
                flip_h: true,
                ..Params::default()
            },
        ] {
            let z = z_of(t);
            assert!(z.abs() < 5.0, "{t:?}: {z}");
        }
        let bright = z_of(Params {
            brightness: 1.2,
            ..Params::default()
        });
        assert!((bright - 79.6).abs() < 5.0, "{bright}");
        let shift = z_of(Params {
            shift: (2, 0),
            ..Params::default()
        });
        assert!((shift + 22.6).abs() < 5.0, "{shift}");
        let cut = z_of(Params {
            cutout: Some((4, 3, 5)),
            ..Params::default()
        });
        assert!((cut + 11.3).abs() < 5.0, "{cut}");
        let kinds: Vec<bool> = Kind::ALL.iter().map(|k| k.is_orthogonal()).collect();
        assert_eq!(kinds, [true, true, false, false, false]);
        let _ = draw(Kind::Flip, &Ranges::default(), &mut rng, 4, 4);
    }
}
