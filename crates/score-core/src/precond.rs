//! Preconditioning and training losses of EDM Table 1.
//!
//! D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ)). The training loss is
//! E_σ λ(σ)·‖D(x₀ + σn; σ) − x₀‖², with σ drawn from the preconditioning's training
//! distribution. For EDM, λ(σ)·c_out(σ)² = 1, so the effective regression target of F,
//! (x₀ − c_skip·x)/c_out, has unit variance at every σ when Var x₀ = σ_data².

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use crate::sigmas::VpSchedule;

/// The three preconditionings of EDM Table 1, with the training σ distribution of each.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Precond {
    /// EDM ("ours" in Table 1).
    Edm {
        /// σ_data, the data's standard deviation (0.5 for images in [−1, 1]).
        sigma_data: f64,
        /// Mean of ln σ during training (−1.2).
        p_mean: f64,
        /// Standard deviation of ln σ during training (1.2).
        p_std: f64,
    },
    /// Variance preserving (Song et al. 2021, as in EDM Table 1).
    Vp {
        /// The VP schedule.
        schedule: VpSchedule,
        /// M, the number of discrete training time steps (1000).
        m: f64,
        /// ε_t, the smallest training time (1e-5).
        eps_t: f64,
    },
    /// A discrete-time DDPM network (ε- or v-prediction) as a denoiser of EDM's σ, as
    /// k-diffusion's `DiscreteEpsDDPMDenoiser` / `DiscreteVDDPMDenoiser` wrap it:
    /// c_in = 1/√(σ²+1), c_noise = t(σ) (log σ interpolated between the discrete levels
    /// σ_t = √((1−ᾱ_t)/ᾱ_t), see [`BetaSchedule::t_of_sigma`]); ε: c_skip = 1,
    /// c_out = −σ; v: c_skip = 1/(σ²+1), c_out = −σ/√(σ²+1).
    Discrete {
        /// The β schedule.
        schedule: BetaSchedule,
        /// v-prediction instead of ε.
        v_prediction: bool,
    },
    /// Improved DDPM (Nichol & Dhariwal 2021, as in EDM Table 1 and EDM's
    /// `iDDPMPrecond`): c_skip = 1, c_out = −σ, c_in = 1/√(σ²+1) and c_noise = M − 1 − j,
    /// j the index of the level u_j nearest σ in the table of [`iddpm_levels`].
    Iddpm {
        /// C₁ (0.001).
        c1: f64,
        /// C₂ (0.008).
        c2: f64,
        /// M (1000).
        m: usize,
    },
    /// Variance exploding (Song et al. 2021, as in EDM Table 1).
    Ve {
        /// σ_min of training (0.02).
        sigma_min: f64,
        /// σ_max of training (100).
        sigma_max: f64,
    },
}

/// A DDPM β schedule (diffusers' `DDPMScheduler` names): `linear` (β linearly from
/// `beta_start` to `beta_end`), `scaled_linear` (√β linearly) or `squaredcos_cap_v2`
/// (Nichol & Dhariwal's cosine, β capped at 0.999), over `steps` steps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BetaSchedule {
    /// `"linear"` = 0, `"scaled_linear"` = 1, `"squaredcos_cap_v2"` = 2.
    pub kind: BetaKind,
    /// β of the first step.
    pub beta_start: f64,
    /// β of the last step.
    pub beta_end: f64,
    /// Number of training steps (1000).
    pub steps: usize,
}

/// The shape of a [`BetaSchedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaKind {
    /// β linear in t.
    Linear,
    /// √β linear in t (Stable Diffusion).
    ScaledLinear,
    /// The cosine schedule (`squaredcos_cap_v2`).
    SquaredcosCapV2,
}

impl BetaSchedule {
    /// DDPM's: linear from 1e−4 to 0.02 over 1000 steps.
    pub fn ddpm() -> Self {
        Self {
            kind: BetaKind::Linear,
            beta_start: 1e-4,
            beta_end: 0.02,
            steps: 1000,
        }
    }

    /// The β of every step.
    pub fn betas(&self) -> Vec<f64> {
        let n = self.steps.max(2);
        let lin = |a: f64, b: f64, i: usize| a + (b - a) * i as f64 / (n - 1) as f64;
        (0..n)
            .map(|i| match self.kind {
                BetaKind::Linear => lin(self.beta_start, self.beta_end, i),
                BetaKind::ScaledLinear => {
                    lin(self.beta_start.sqrt(), self.beta_end.sqrt(), i).powi(2)
                }
                BetaKind::SquaredcosCapV2 => {
                    let f = |t: f64| {
                        ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                            .cos()
                            .powi(2)
                    };
                    (1.0 - f((i + 1) as f64 / n as f64) / f(i as f64 / n as f64)).min(0.999)
                }
            })
            .collect()
    }

    /// ln σ_t of every step, σ_t = √((1−ᾱ_t)/ᾱ_t), increasing in t.
    pub fn log_sigmas(&self) -> Vec<f64> {
        let mut abar = 1.0;
        self.betas()
            .into_iter()
            .map(|b| {
                abar *= 1.0 - b;
                ((1.0 - abar) / abar).sqrt().ln()
            })
            .collect()
    }

    /// The (fractional) step of σ: ln σ interpolated linearly between the two
    /// neighbouring levels (k-diffusion's `sigma_to_t`), clamped to [0, steps − 1].
    pub fn t_of_sigma(&self, sigma: f64) -> f64 {
        let ls = self.log_sigmas();
        let l = sigma.ln();
        let low = ls
            .iter()
            .filter(|&&v| l >= v)
            .count()
            .clamp(1, ls.len() - 1)
            - 1;
        let (a, b) = (ls[low], ls[low + 1]);
        let w = ((a - l) / (a - b)).clamp(0.0, 1.0);
        (1.0 - w) * low as f64 + w * (low + 1) as f64
    }
}

/// iDDPM's noise levels u_0 > u_1 > … > u_M = 0 (EDM Table 1, footnote, as EDM's
/// `iDDPMPrecond` builds them): ᾱ(j) = sin²(π/2 · j/(M(C₂+1))),
/// u_{j−1} = √((u_j² + 1)/max(ᾱ(j−1)/ᾱ(j), C₁) − 1).
pub fn iddpm_levels(c1: f64, c2: f64, m: usize) -> Vec<f64> {
    let abar = |j: usize| {
        (0.5 * std::f64::consts::PI * j as f64 / m as f64 / (c2 + 1.0))
            .sin()
            .powi(2)
    };
    let mut u = vec![0.0; m + 1];
    for j in (1..=m).rev() {
        u[j - 1] = ((u[j] * u[j] + 1.0) / (abar(j - 1) / abar(j)).max(c1) - 1.0).sqrt();
    }
    u
}

impl Default for Precond {
    fn default() -> Self {
        Self::edm(0.5)
    }
}

/// The four coefficients of a preconditioning at one σ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficients {
    /// Weight of the skip connection.
    pub c_skip: f64,
    /// Scale of the network output.
    pub c_out: f64,
    /// Scale of the network input.
    pub c_in: f64,
    /// The noise conditioning fed to the network.
    pub c_noise: f64,
}

impl Precond {
    /// EDM preconditioning with the paper's training distribution (P_mean = −1.2,
    /// P_std = 1.2).
    pub fn edm(sigma_data: f64) -> Self {
        Self::Edm {
            sigma_data,
            p_mean: -1.2,
            p_std: 1.2,
        }
    }

    /// VP preconditioning with EDM's constants.
    pub fn vp() -> Self {
        Self::Vp {
            schedule: VpSchedule::default(),
            m: 1000.0,
            eps_t: 1e-5,
        }
    }

    /// VE preconditioning with EDM's constants.
    pub fn ve() -> Self {
        Self::Ve {
            sigma_min: 0.02,
            sigma_max: 100.0,
        }
    }

    /// c_skip, c_out, c_in, c_noise at σ (EDM Table 1).
    pub fn coefficients(&self, sigma: f64) -> Coefficients {
        match *self {
            Self::Edm { sigma_data: sd, .. } => {
                let s2 = sigma * sigma + sd * sd;
                Coefficients {
                    c_skip: sd * sd / s2,
                    c_out: sigma * sd / s2.sqrt(),
                    c_in: 1.0 / s2.sqrt(),
                    c_noise: 0.25 * sigma.ln(),
                }
            }
            Self::Vp { schedule, m, .. } => Coefficients {
                c_skip: 1.0,
                c_out: -sigma,
                c_in: 1.0 / (sigma * sigma + 1.0).sqrt(),
                c_noise: (m - 1.0) * schedule.t_of_sigma(sigma),
            },
            Self::Ve { .. } => Coefficients {
                c_skip: 1.0,
                c_out: sigma,
                c_in: 1.0,
                c_noise: (0.5 * sigma).ln(),
            },
            Self::Iddpm { c1, c2, m } => {
                let u = iddpm_levels(c1, c2, m);
                let j = (0..u.len())
                    .min_by(|&a, &b| (u[a] - sigma).abs().total_cmp(&(u[b] - sigma).abs()))
                    .unwrap_or(0);
                Coefficients {
                    c_skip: 1.0,
                    c_out: -sigma,
                    c_in: 1.0 / (sigma * sigma + 1.0).sqrt(),
                    c_noise: (m as f64 - 1.0) - j as f64,
                }
            }
            Self::Discrete {
                schedule,
                v_prediction,
            } => {
                let s2 = sigma * sigma + 1.0;
                Coefficients {
                    c_skip: if v_prediction { 1.0 / s2 } else { 1.0 },
                    c_out: if v_prediction {
                        -sigma / s2.sqrt()
                    } else {
                        -sigma
                    },
                    c_in: 1.0 / s2.sqrt(),
                    c_noise: schedule.t_of_sigma(sigma),
                }
            }
        }
    }

    /// The loss weight λ(σ) of EDM Table 1.
    pub fn loss_weight(&self, sigma: f64) -> f64 {
        match *self {
            Self::Edm { sigma_data: sd, .. } => (sigma * sigma + sd * sd) / (sigma * sd).powi(2),
            Self::Vp { .. } | Self::Ve { .. } | Self::Iddpm { .. } => 1.0 / (sigma * sigma),
            // DDPM's simple loss ‖ε − ε̂‖² = ‖D − x₀‖²/σ² (ε), and for v with
            // c_out² = σ²/(σ²+1): ‖v − v̂‖² = ‖D − x₀‖²·(σ²+1)/σ².
            Self::Discrete { v_prediction, .. } => {
                let w = 1.0 / (sigma * sigma);
                if v_prediction {
                    w * (sigma * sigma + 1.0)
                } else {
                    w
                }
            }
        }
    }

    /// Draw one training σ from this preconditioning's training distribution.
    pub fn sample_training_sigma<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            Self::Edm { p_mean, p_std, .. } => {
                let n: f64 = StandardNormal.sample(rng);
                (p_mean + p_std * n).exp()
            }
            Self::Vp {
                schedule, eps_t, ..
            } => {
                let u: f64 = rng.random();
                schedule.sigma(1.0 + u * (eps_t - 1.0))
            }
            Self::Ve {
                sigma_min,
                sigma_max,
            } => {
                let u: f64 = rng.random();
                (sigma_min.ln() + u * (sigma_max.ln() - sigma_min.ln())).exp()
            }
            // iDDPM's training (EDM Table 1): a level u_j, j uniform in [0, M − 1].
            Self::Iddpm { c1, c2, m } => {
                let u = iddpm_levels(c1, c2, m);
                u[rng.random_range(0..m.max(1))]
            }
            // DDPM's training: a step uniformly at random.
            Self::Discrete { schedule, .. } => {
                let ls = schedule.log_sigmas();
                ls[rng.random_range(0..ls.len())].exp()
            }
        }
    }

    /// σ_data of the preconditioning (VP and VE assume unit-scale data: 1).
    pub fn sigma_data(&self) -> f64 {
        match *self {
            Self::Edm { sigma_data, .. } => sigma_data,
            _ => 1.0,
        }
    }
}

/// σ_data of a training set: the standard deviation of all its values (EDM: "the
/// standard deviation of the data distribution"; 0.5 is EDM's value for CIFAR-10 in
/// [−1, 1]). Computed in one pass with Welford's update; NaN for no values.
pub fn sigma_data_of(values: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
    for v in values {
        n += 1;
        let d = v - mean;
        mean += d / n as f64;
        m2 += d * (v - mean);
    }
    if n == 0 {
        f64::NAN
    } else {
        (m2 / n as f64).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn edm_identities_hold() {
        let p = Precond::edm(0.5);
        for &s in &[0.002, 0.05, 0.5, 1.0, 7.0, 80.0] {
            let c = p.coefficients(s);
            let sd2: f64 = 0.25;
            // λ·c_out² = 1 (unit-weight effective loss).
            assert!((p.loss_weight(s) * c.c_out * c.c_out - 1.0).abs() < 1e-12);
            // c_in²(σ² + σ_d²) = 1 (unit-variance network input).
            assert!((c.c_in * c.c_in * (s * s + sd2) - 1.0).abs() < 1e-12);
            // Unit-variance training target: ((1 − c_skip)²σ_d² + c_skip²σ²)/c_out² = 1.
            let var = ((1.0 - c.c_skip).powi(2) * sd2 + c.c_skip.powi(2) * s * s) / c.c_out.powi(2);
            assert!(
                (var - 1.0).abs() < 1e-10,
                "sigma {s}: target variance {var}"
            );
            // c_skip minimises the target variance: derivative wrt c_skip vanishes.
            let dvar = -2.0 * (1.0 - c.c_skip) * sd2 + 2.0 * c.c_skip * s * s;
            assert!(dvar.abs() < 1e-12);
        }
    }

    #[test]
    fn sigma_data_is_the_population_std() {
        // Values 0, 1, 2, 3: mean 1.5, variance (2.25 + 0.25 + 0.25 + 2.25)/4 = 1.25.
        let s = sigma_data_of([0.0, 1.0, 2.0, 3.0].into_iter());
        assert!((s - 1.25f64.sqrt()).abs() < 1e-15);
        assert!(sigma_data_of(std::iter::empty()).is_nan());
    }

    #[test]
    fn vp_and_ve_follow_table_1() {
        let vp = Precond::vp();
        let c = vp.coefficients(2.0);
        assert_eq!((c.c_skip, c.c_out), (1.0, -2.0));
        assert!((c.c_in - 1.0 / 5f64.sqrt()).abs() < 1e-15);
        // EDM's VPPrecond: c_noise = (M − 1)·σ⁻¹(σ), σ⁻¹(σ) = (sqrt(β_min² +
        // 2β_d ln(1 + σ²)) − β_min)/β_d; at σ = 2 this is 999 · 0.397190992772224 =
        // 396.7938017794516 (evaluated separately in Python's float64).
        assert!(
            (c.c_noise - 396.793_801_779_451_6).abs() < 1e-9,
            "{}",
            c.c_noise
        );
        let ve = Precond::ve().coefficients(4.0);
        assert_eq!((ve.c_skip, ve.c_out, ve.c_in), (1.0, 4.0, 1.0));
        assert!((ve.c_noise - 2f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn edm_training_sigma_is_lognormal() {
        let p = Precond::edm(0.5);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let n = 20_000;
        let logs: Vec<f64> = (0..n)
            .map(|_| p.sample_training_sigma(&mut rng).ln())
            .collect();
        let mean = logs.iter().sum::<f64>() / n as f64;
        let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard error of the mean is 1.2/sqrt(n) ≈ 0.0085; 5 SE allowed.
        assert!((mean + 1.2).abs() < 0.043, "mean {mean}");
        // SE of the variance ≈ σ²·sqrt(2/n) ≈ 0.0144; 5 SE allowed.
        assert!((var - 1.44).abs() < 0.072, "var {var}");
    }
}
