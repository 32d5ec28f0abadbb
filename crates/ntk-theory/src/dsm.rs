//! The diffusion set-up of the paper (`ntk-theory.md`): the Ornstein–Uhlenbeck forward
//! process X_t = α_t X₀ + σ_t ξ with α_t = e^{−t}, h_t = σ_t² = 1 − e^{−2t}, t ~ U[t₀, T];
//! denoising score matching as the regression of X₀ on z = (X_t, t, 1), with regression
//! function f*(x, t) = E[X₀ | X_t = x]; the score s = (α_t f − x)/h_t (Tweedie). Targets
//! with exact f*: a Gaussian N(μ·1, v·I) and a two-component mixture at ±c·1.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use score_core::array::rows_of;

/// OU coefficients at time t: (α_t, h_t).
pub fn ou(t: f64) -> (f64, f64) {
    ((-t).exp(), -(-2.0 * t).exp_m1())
}

/// The data distribution, with exact posterior means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// N(mean·1, var·I) in dimension `dim`.
    Gaussian {
        /// Dimension.
        dim: usize,
        /// Mean of every coordinate.
        mean: f64,
        /// Variance of every coordinate.
        var: f64,
    },
    /// ½N(+c·1, var·I) + ½N(−c·1, var·I).
    TwoMixture {
        /// Dimension.
        dim: usize,
        /// Centre offset c.
        c: f64,
        /// Component variance.
        var: f64,
    },
}

impl Target {
    /// Dimension d.
    pub fn dim(&self) -> usize {
        match *self {
            Self::Gaussian { dim, .. } | Self::TwoMixture { dim, .. } => dim,
        }
    }

    /// Draw one X₀.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Array1<f64> {
        match *self {
            Self::Gaussian { dim, mean, var } => (0..dim)
                .map(|_| mean + var.sqrt() * Distribution::<f64>::sample(&StandardNormal, rng))
                .collect(),
            Self::TwoMixture { dim, c, var } => {
                let s = if rng.random::<bool>() { c } else { -c };
                (0..dim)
                    .map(|_| s + var.sqrt() * Distribution::<f64>::sample(&StandardNormal, rng))
                    .collect()
            }
        }
    }

    /// f*(x, t) = E[X₀ | X_t = x].
    pub fn posterior_mean(&self, x: ArrayView1<f64>, t: f64) -> Array1<f64> {
        let (a, h) = ou(t);
        let post = |mu: f64, var: f64| -> Array1<f64> {
            let g = var * a / (a * a * var + h);
            x.iter().map(|xi| mu + g * (xi - a * mu)).collect()
        };
        match *self {
            Self::Gaussian { mean, var, .. } => post(mean, var),
            Self::TwoMixture { c, var, .. } => {
                let s2 = a * a * var + h;
                let ll =
                    |mu: f64| -x.iter().map(|xi| (xi - a * mu).powi(2)).sum::<f64>() / (2.0 * s2);
                let (lp, lm) = (ll(c), ll(-c));
                let m = lp.max(lm);
                let (wp, wm) = ((lp - m).exp(), (lm - m).exp());
                let (p, q) = (post(c, var), post(-c, var));
                p.iter()
                    .zip(&q)
                    .map(|(u, v)| (wp * u + wm * v) / (wp + wm))
                    .collect()
            }
        }
    }

    /// The exact score ∇ log p_t(x) = (α_t f*(x, t) − x)/h_t.
    pub fn score(&self, x: ArrayView1<f64>, t: f64) -> Array1<f64> {
        let (a, h) = ou(t);
        self.posterior_mean(x, t)
            .iter()
            .zip(x)
            .map(|(f, xi)| (a * f - xi) / h)
            .collect()
    }
}

/// N denoising triples: inputs z = (x_t, t, 1) (N × (d + 2)) and labels X₀ (N × d),
/// one noise draw per clean sample, t ~ U[t₀, T].
#[derive(Debug, Clone)]
pub struct Triples {
    /// Inputs, N × (d + 2).
    pub z: Array2<f64>,
    /// Labels X₀, N × d.
    pub y: Array2<f64>,
    /// The exact regression function f*(x_t, t) at each input, N × d (0 × d where it
    /// is unknown).
    pub f_star: Array2<f64>,
}

/// How the diffusion time of each triple is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeSampling {
    /// t ~ U[t₀, T] (the paper's set-up).
    #[default]
    Uniform,
    /// ln t ~ U[ln t₀, ln T]: more triples at small t, where f* changes fastest.
    LogUniform,
}

impl TimeSampling {
    fn draw<R: rand::Rng + ?Sized>(self, t0: f64, t_max: f64, rng: &mut R) -> f64 {
        let u = rng.random::<f64>();
        match self {
            Self::Uniform => t0 + (t_max - t0) * u,
            Self::LogUniform => (t0.ln() + (t_max.ln() - t0.ln()) * u).exp(),
        }
    }
}

impl Triples {
    /// Draw `n` triples with t ~ U[t₀, T].
    pub fn draw(target: &Target, n: usize, t0: f64, t_max: f64, seed: u64) -> Self {
        Self::draw_with(target, n, t0, t_max, seed, TimeSampling::Uniform)
    }

    /// Draw `n` triples with the given time sampling.
    pub fn draw_with(
        target: &Target,
        n: usize,
        t0: f64,
        t_max: f64,
        seed: u64,
        times: TimeSampling,
    ) -> Self {
        let d = target.dim();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut z, mut y, mut f_star) = (
            Vec::with_capacity(n * (d + 2)),
            Vec::with_capacity(n * d),
            Vec::with_capacity(n * d),
        );
        for _ in 0..n {
            let x0 = target.sample(&mut rng);
            let t = times.draw(t0, t_max, &mut rng);
            let (a, h) = ou(t);
            let xt: Vec<f64> = x0
                .iter()
                .map(|v| a * v + h.sqrt() * Distribution::<f64>::sample(&StandardNormal, &mut rng))
                .collect();
            f_star.extend(target.posterior_mean(ArrayView1::from(&xt), t));
            z.extend(&xt);
            z.extend([t, 1.0]);
            y.extend(x0);
        }
        Self {
            z: rows_of(z, d + 2),
            y: rows_of(y, d),
            f_star: rows_of(f_star, d),
        }
    }

    /// `n` triples from an empirical data set (`[N, d]`, rows drawn with replacement).
    /// `f_star` is unknown there and left empty (0 × d).
    pub fn from_data(data: ArrayView2<f64>, n: usize, t0: f64, t_max: f64, seed: u64) -> Self {
        let (rows, d) = data.dim();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut z, mut y) = (Vec::with_capacity(n * (d + 2)), Vec::with_capacity(n * d));
        for _ in 0..n {
            let i = rng.random_range(0..rows);
            let x0 = data.row(i);
            let t = t0 + (t_max - t0) * rng.random::<f64>();
            let (a, h) = ou(t);
            z.extend(x0.iter().map(|v| {
                a * v + h.sqrt() * Distribution::<f64>::sample(&StandardNormal, &mut rng)
            }));
            z.extend([t, 1.0]);
            y.extend(x0);
        }
        Self {
            z: rows_of(z, d + 2),
            y: rows_of(y, d),
            f_star: Array2::zeros((0, d)),
        }
    }

    /// Number of triples.
    pub fn len(&self) -> usize {
        self.y.nrows()
    }

    /// Data dimension d.
    pub fn d(&self) -> usize {
        self.y.ncols()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Input dimension p = d + 2.
    pub fn p(&self) -> usize {
        self.d() + 2
    }

    /// Mean squared label noise E‖X₀ − f*‖²/d of these triples (the σ̂² of RWY's rule
    /// when the target is known).
    pub fn label_noise_var(&self) -> f64 {
        self.y
            .iter()
            .zip(&self.f_star)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / self.y.len() as f64
    }
}
