//! Noise-level (σ) grids and the VP ↔ EDM change of variables.
//!
//! EDM (Karras et al. 2022), Eq. 5 and Table 1: every grid runs from the largest σ down
//! to the smallest and, like k-diffusion, ends with an appended σ_N = 0 so that the
//! last sampler step lands on the data. Grids are `f64`; samplers cast to the tensor
//! dtype only where they touch tensors.

use crate::error::{Result, ScoreError};

/// EDM's VP schedule parameters (Table 1): σ(t) = sqrt(exp(½ β_d t² + β_min t) − 1).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VpSchedule {
    /// β_d (EDM: 19.9).
    pub beta_d: f64,
    /// β_min (EDM: 0.1).
    pub beta_min: f64,
}

impl Default for VpSchedule {
    fn default() -> Self {
        Self {
            beta_d: 19.9,
            beta_min: 0.1,
        }
    }
}

impl VpSchedule {
    /// σ(t) = sqrt(exp(½ β_d t² + β_min t) − 1).
    pub fn sigma(&self, t: f64) -> f64 {
        ((0.5 * self.beta_d * t * t + self.beta_min * t).exp_m1()).sqrt()
    }

    /// The inverse t(σ), solving ½ β_d t² + β_min t = ln(1 + σ²).
    pub fn t_of_sigma(&self, sigma: f64) -> f64 {
        let c = (sigma * sigma).ln_1p();
        ((self.beta_min * self.beta_min + 2.0 * self.beta_d * c).sqrt() - self.beta_min)
            / self.beta_d
    }

    /// The VP scale s(t) = α_t = 1/sqrt(1 + σ(t)²).
    pub fn alpha(&self, t: f64) -> f64 {
        1.0 / (1.0 + self.sigma(t).powi(2)).sqrt()
    }
}

/// Map a VP state (x_t, σ_t, α_t) to EDM's variables: x ↦ x/α_t, σ ↦ σ_t/α_t.
pub fn vp_to_edm(x_t: f64, sigma_t: f64, alpha_t: f64) -> (f64, f64) {
    (x_t / alpha_t, sigma_t / alpha_t)
}

/// Map an EDM state (x, σ) to the VP one of the same ODE: α = 1/sqrt(1 + σ²),
/// σ_t = σ·α and x_t = α·x. Returns (x_t, σ_t, α_t).
pub fn edm_to_vp(x: f64, sigma: f64) -> (f64, f64, f64) {
    let alpha = 1.0 / (1.0 + sigma * sigma).sqrt();
    (alpha * x, sigma * alpha, alpha)
}

fn check_range(n: usize, sigma_min: f64, sigma_max: f64) -> Result<()> {
    if n < 2 {
        return Err(ScoreError::invalid(
            "steps",
            format!("need at least 2 noise levels, got {n}"),
        ));
    }
    // A grid longer than memory holds would abort in the allocator: refuse it here.
    crate::limits::ensure_values_fit("steps", n as u128 + 1, 8, "use fewer steps")?;
    if !(sigma_min > 0.0 && sigma_max > sigma_min && sigma_max.is_finite()) {
        return Err(ScoreError::invalid(
            "sigma range",
            format!(
                "need 0 < sigma_min < sigma_max < inf, got sigma_min = {sigma_min}, sigma_max = {sigma_max}"
            ),
        ));
    }
    Ok(())
}

fn with_zero(mut v: Vec<f64>) -> Vec<f64> {
    v.push(0.0);
    v
}

/// Karras et al. (EDM Eq. 5): σ_i = (σ_max^{1/ρ} + i/(N−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ,
/// i = 0 … N−1, followed by σ_N = 0 (N + 1 values in all).
pub fn karras_sigmas(n: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Result<Vec<f64>> {
    check_range(n, sigma_min, sigma_max)?;
    if !(rho > 0.0) {
        return Err(ScoreError::invalid(
            "rho",
            format!("must be positive, got {rho}"),
        ));
    }
    let (a, b) = (sigma_max.powf(1.0 / rho), sigma_min.powf(1.0 / rho));
    Ok(with_zero(
        (0..n)
            .map(|i| (a + i as f64 / (n - 1) as f64 * (b - a)).powf(rho))
            .collect(),
    ))
}

/// EDM's VP grid: σ(t_i) with t_i uniform from 1 down to ε_t (EDM Table 1, ε_t = 1e-3),
/// followed by 0.
pub fn vp_sigmas(n: usize, schedule: VpSchedule, eps_t: f64) -> Result<Vec<f64>> {
    if !(eps_t > 0.0 && eps_t < 1.0) {
        return Err(ScoreError::invalid(
            "eps_t",
            format!("must lie in (0, 1), got {eps_t}"),
        ));
    }
    check_range(n, schedule.sigma(eps_t), schedule.sigma(1.0))?;
    Ok(with_zero(
        (0..n)
            .map(|i| schedule.sigma(1.0 + i as f64 / (n - 1) as f64 * (eps_t - 1.0)))
            .collect(),
    ))
}

/// A VP grid over a chosen σ range: σ(t_i) with t_i uniform from t(σ_max) down to
/// t(σ_min). With σ_max = σ(1) and σ_min = σ(ε_t) this is [`vp_sigmas`].
pub fn vp_sigmas_in(
    n: usize,
    schedule: VpSchedule,
    sigma_min: f64,
    sigma_max: f64,
) -> Result<Vec<f64>> {
    check_range(n, sigma_min, sigma_max)?;
    let (t0, t1) = (
        schedule.t_of_sigma(sigma_max),
        schedule.t_of_sigma(sigma_min),
    );
    Ok(with_zero(
        (0..n)
            .map(|i| schedule.sigma(t0 + i as f64 / (n - 1) as f64 * (t1 - t0)))
            .collect(),
    ))
}

/// Log-uniform (geometric) grid from σ_max to σ_min, followed by 0. This is also
/// EDM's VE grid (σ ∈ [0.02, 100]).
pub fn loguniform_sigmas(n: usize, sigma_min: f64, sigma_max: f64) -> Result<Vec<f64>> {
    check_range(n, sigma_min, sigma_max)?;
    let (a, b) = (sigma_max.ln(), sigma_min.ln());
    Ok(with_zero(
        (0..n)
            .map(|i| (a + i as f64 / (n - 1) as f64 * (b - a)).exp())
            .collect(),
    ))
}

/// EDM's VE grid: geometric from 100 to 0.02 (Table 1), followed by 0.
pub fn ve_sigmas(n: usize) -> Result<Vec<f64>> {
    loguniform_sigmas(n, 0.02, 100.0)
}

/// Linear grid from σ_max to σ_min, followed by 0.
pub fn linear_sigmas(n: usize, sigma_min: f64, sigma_max: f64) -> Result<Vec<f64>> {
    check_range(n, sigma_min, sigma_max)?;
    Ok(with_zero(
        (0..n)
            .map(|i| sigma_max + i as f64 / (n - 1) as f64 * (sigma_min - sigma_max))
            .collect(),
    ))
}

/// The kind of σ grid, for configuration files and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GridKind {
    /// [`karras_sigmas`] with ρ = 7.
    Karras,
    /// [`vp_sigmas`] with EDM's defaults.
    Vp,
    /// [`ve_sigmas`].
    Ve,
    /// [`loguniform_sigmas`].
    LogUniform,
    /// [`linear_sigmas`].
    Linear,
}

impl std::str::FromStr for GridKind {
    type Err = ScoreError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "karras" => Self::Karras,
            "vp" => Self::Vp,
            "ve" => Self::Ve,
            "log-uniform" | "loguniform" | "exponential" => Self::LogUniform,
            "linear" => Self::Linear,
            _ => {
                return Err(ScoreError::invalid(
                    "grid",
                    format!("unknown grid '{s}', expected karras, vp, ve, log-uniform or linear"),
                ));
            }
        })
    }
}

impl GridKind {
    /// The σ range this kind uses when none is given: EDM's (0.002, 80) for Karras,
    /// log-uniform and linear; (σ(10⁻³), σ(1)) ≈ (0.0105, 152.2) for VP and
    /// (0.02, 100) for VE (EDM Table 1).
    pub fn default_range(self) -> (f64, f64) {
        match self {
            Self::Vp => {
                let vp = VpSchedule::default();
                (vp.sigma(1e-3), vp.sigma(1.0))
            }
            Self::Ve => (0.02, 100.0),
            _ => (0.002, 80.0),
        }
    }

    /// Build an `n`-level grid of this kind from σ_max down to σ_min (every kind honours
    /// the range; VP spaces its levels uniformly in t, VE geometrically).
    pub fn build(self, n: usize, sigma_min: f64, sigma_max: f64) -> Result<Vec<f64>> {
        match self {
            Self::Karras => karras_sigmas(n, sigma_min, sigma_max, 7.0),
            Self::Vp => vp_sigmas_in(n, VpSchedule::default(), sigma_min, sigma_max),
            Self::Ve | Self::LogUniform => loguniform_sigmas(n, sigma_min, sigma_max),
            Self::Linear => linear_sigmas(n, sigma_min, sigma_max),
        }
    }

    /// [`GridKind::build`] with σ_min/σ_max when given, else [`GridKind::default_range`].
    pub fn build_or_default(
        self,
        n: usize,
        sigma_min: Option<f64>,
        sigma_max: Option<f64>,
    ) -> Result<Vec<f64>> {
        let (lo, hi) = self.default_range();
        self.build(n, sigma_min.unwrap_or(lo), sigma_max.unwrap_or(hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn karras_matches_edm_reference_values() {
        // EDM Eq. 5 at its defaults (σ 0.002–80, ρ = 7), N = 18, given to 4 decimals (or
        // 5 significant digits); we check each to 1e-4 absolute or 5e-5 relative.
        let reference = [
            80.0, 57.586, 40.7856, 28.3746, 19.3525, 12.9101, 8.4009, 5.3152, 3.2568, 1.9233,
            1.0882, 0.5853, 0.2964, 0.1395, 0.0599, 0.0229, 0.0075, 0.002,
        ];
        let s = karras_sigmas(18, 0.002, 80.0, 7.0).unwrap();
        assert_eq!(s.len(), 19);
        assert_eq!(s[18], 0.0);
        for (i, (&got, &want)) in s.iter().zip(&reference).enumerate() {
            // Rounding to 4 decimals leaves at most 5e-5 absolute error; values given
            // with fewer decimals (57.586) carry at most 5e-4.
            let tol = if i == 1 { 5e-4 } else { 1e-4 };
            assert!(
                (got - want).abs() <= tol,
                "sigma[{i}] = {got}, reference {want}"
            );
        }
    }

    #[test]
    fn vp_endpoints_match_edm() {
        let vp = VpSchedule::default();
        assert!((vp.sigma(1.0) - 152.17).abs() < 5e-3, "{}", vp.sigma(1.0));
        assert!(
            (vp.sigma(1e-3) - 0.010486).abs() < 5e-7,
            "{}",
            vp.sigma(1e-3)
        );
        for &s in &[0.01, 0.5, 3.0, 80.0] {
            assert!((vp.sigma(vp.t_of_sigma(s)) - s).abs() < 1e-9 * s.max(1.0));
        }
        let g = vp_sigmas(10, vp, 1e-3).unwrap();
        assert!((g[0] - vp.sigma(1.0)).abs() < 1e-12 && (g[9] - vp.sigma(1e-3)).abs() < 1e-12);
    }

    #[test]
    fn vp_edm_round_trip() {
        let (xt, st, a) = edm_to_vp(1.7, 3.0);
        let (x, s) = vp_to_edm(xt, st, a);
        assert!((x - 1.7).abs() < 1e-12 && (s - 3.0).abs() < 1e-12);
        // α² + σ_t² = 1 on EDM's VP path.
        assert!((a * a + st * st - 1.0).abs() < 1e-12);
    }

    #[test]
    fn grids_are_decreasing_and_hit_their_ends() {
        for kind in [
            GridKind::Karras,
            GridKind::LogUniform,
            GridKind::Linear,
            GridKind::Ve,
            GridKind::Vp,
        ] {
            let g = kind.build(12, 0.002, 80.0).unwrap();
            assert_eq!(g.len(), 13);
            assert!(
                g.windows(2).all(|w| w[0] > w[1]),
                "{kind:?} not decreasing: {g:?}"
            );
        }
        let g = loguniform_sigmas(5, 0.01, 100.0).unwrap();
        assert!((g[2] - 1.0).abs() < 1e-12);
        // Defaults reproduce EDM's VP and VE grids; a given range is honoured by both.
        let vp = GridKind::Vp.build_or_default(10, None, None).unwrap();
        let edm_vp = vp_sigmas(10, VpSchedule::default(), 1e-3).unwrap();
        for (a, b) in vp.iter().zip(&edm_vp) {
            assert!((a - b).abs() <= 1e-9 * b.max(1.0), "{a} vs {b}");
        }
        let ve = GridKind::Ve.build_or_default(10, None, None).unwrap();
        assert_eq!(ve, ve_sigmas(10).unwrap());
        for kind in [GridKind::Vp, GridKind::Ve] {
            let g = kind.build(6, 0.5, 20.0).unwrap();
            assert!(
                (g[0] - 20.0).abs() < 1e-9 && (g[5] - 0.5).abs() < 1e-9,
                "{kind:?} {g:?}"
            );
        }
        assert!(GridKind::Karras.build(usize::MAX - 1, 0.002, 80.0).is_err());
        assert!(karras_sigmas(1, 0.002, 80.0, 7.0).is_err());
        assert!(linear_sigmas(5, 2.0, 1.0).is_err());
    }
}
