//! The settings of a distillation run: the method, the generator gradient's form, the
//! σ of the distillation loss, Stage 1's path and Stage 2's target schedule (with the
//! controls of the spec as orders of the same schedule).

use score_train::train::TrainConfig;

use crate::error::{DisbackError, Result};

/// Plain score distillation or DisBack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Diff-Instruct / VSD / DMD: s_φ starts at the teacher, the target is the teacher.
    Baseline,
    /// DisBack: Stage 1 records the degradation path, Stage 2 walks it (see [`Order`]).
    Disback,
}

/// The form of the generator gradient (module [`crate::gradient`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GradientForm {
    /// DMD2's: g = (D_fake − D_target)/mean|x₀ − D_target| per sample, i.e. the VSD
    /// gradient with w(σ) = σ²/mean|x₀ − D_target|.
    Dmd2,
    /// Plain VSD with w(σ) = σ²: g = σ²(s_fake − s_target) = D_fake − D_target.
    Vsd,
}

/// How Stage 2's target moves over the recorded path s′₀ = teacher, …, s′_N. Every
/// order starts s_φ at s′_N and ends at the teacher; they differ in the intermediate
/// targets, each held for `switch_every` generator steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// DisBack: s′_{N−1}, …, s′_1, then the teacher.
    Backward,
    /// Control: s′_1, …, s′_{N−1}, then the teacher.
    Forward,
    /// Control: s′_1, …, s′_{N−1} in a random order (from the run seed), then the teacher.
    Shuffled,
    /// Control: the warm start alone; the target is the teacher from step 0.
    WarmStartOnly,
    /// Control: N − 1 weight interpolations θ_N + (k/N)(θ_teacher − θ_N), k = 1…N−1,
    /// then the teacher.
    Interpolate,
}

/// The σ of the fake score's (and Stage 1's) denoising score matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FakeSigma {
    /// The distillation loss's σ ([`SigmaGrid`]), as DMD2 trains its fake score: the
    /// fake score is accurate where the generator gradient queries it.
    #[default]
    Grid,
    /// The teacher preconditioning's training distribution (EDM's log-normal).
    Training,
}

impl FakeSigma {
    /// Draw one σ: from `grid` (ascending, as [`SigmaGrid::allowed`]) or `precond`'s.
    pub fn draw(
        self,
        grid: &[f64],
        precond: &score_core::Precond,
        rng: &mut rand::rngs::StdRng,
    ) -> f64 {
        use rand::RngExt;
        match self {
            Self::Grid => grid[rng.random_range(0..grid.len())],
            Self::Training => precond.sample_training_sigma(rng),
        }
    }
}

/// Where Stage 1 saves its checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spacing {
    /// Step round(M^(k/N)) for k = 1…N (degradation is fastest early), made strictly
    /// increasing.
    Log,
    /// Step round(k·M/N).
    Linear,
}

/// Stage 1: degradation recording.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PathConfig {
    /// N: checkpoints after the teacher (the path has N + 1 entries).
    pub checkpoints: usize,
    /// M: DSM steps of s′ on samples of the initial generator.
    pub steps: usize,
    /// The checkpoint schedule.
    pub spacing: Spacing,
}

/// The σ of the distillation loss: a Karras grid of `levels` levels from which the
/// lowest and highest `trim` fraction are left out (DMD2: 1000 levels, 2 %), drawn
/// uniformly.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SigmaGrid {
    /// Levels of the grid.
    pub levels: usize,
    /// Smallest σ of the grid.
    pub sigma_min: f64,
    /// Largest σ of the grid.
    pub sigma_max: f64,
    /// Karras ρ.
    pub rho: f64,
    /// Fraction left out at each end.
    pub trim: f64,
}

impl Default for SigmaGrid {
    fn default() -> Self {
        Self {
            levels: 1000,
            sigma_min: 0.002,
            sigma_max: 80.0,
            rho: 7.0,
            trim: 0.02,
        }
    }
}

impl SigmaGrid {
    /// The σ that may be drawn, ascending.
    pub fn allowed(&self) -> Result<Vec<f64>> {
        let mut grid = score_core::sigmas::karras_sigmas(
            self.levels,
            self.sigma_min,
            self.sigma_max,
            self.rho,
        )?;
        grid.pop(); // the trailing 0 of a sampling grid
        grid.reverse();
        let cut = (self.trim * self.levels as f64).floor() as usize;
        if 2 * cut >= grid.len() {
            return Err(DisbackError::invalid(
                "sigma_grid.trim",
                format!("{} leaves no level of {}", self.trim, self.levels),
            ));
        }
        Ok(grid[cut..grid.len() - cut].to_vec())
    }
}

/// Everything a distillation run needs besides the networks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DistillConfig {
    /// Baseline or DisBack.
    pub method: Method,
    /// The generator gradient's form.
    pub gradient: GradientForm,
    /// Generator steps (Stage 2 for DisBack).
    pub steps: usize,
    /// Fake-score DSM updates per generator update (DMD2: 5).
    pub fake_updates: usize,
    /// The generator's optimiser (batch, lr, AdamW, clipping, EMA, checkpoint and log
    /// intervals, seed); `precond` is the teacher's.
    pub generator: TrainConfig,
    /// The fake score's (and Stage 1's s′) optimiser and DSM settings; its `precond`
    /// (with its training σ distribution) is the teacher's.
    pub fake: TrainConfig,
    /// σ of the generator: G(z) = D(σ_gen·z; σ_gen).
    pub sigma_gen: f64,
    /// The σ of the distillation loss.
    pub sigma_grid: SigmaGrid,
    /// The σ of the fake score's DSM (and Stage 1's).
    #[serde(default)]
    pub fake_sigma: FakeSigma,
    /// Stage 1 (DisBack only).
    pub path: PathConfig,
    /// Stage 2's target order (DisBack only).
    pub order: Order,
    /// Generator steps per target (K).
    pub switch_every: usize,
}

impl DistillConfig {
    /// The spec's settings for a teacher with preconditioning `precond`: DMD2 form, 5
    /// fake updates, AdamW (0.9, 0.999) with weight decay 0.01, clipping at 10, σ from
    /// a 1000-level Karras grid without its extreme 2 %, N = 8 log-spaced checkpoints.
    pub fn new(method: Method, steps: usize, precond: score_core::Precond, seed: u64) -> Self {
        let opt = TrainConfig {
            steps,
            batch_size: 64,
            lr: 1e-4,
            warmup_steps: 1,
            grad_clip: Some(10.0),
            ema_halflife_kimg: 1.0,
            ema_rampup_ratio: Some(0.05),
            precond,
            checkpoint_every: 100,
            log_every: 10,
            seed,
            weight_decay: 0.01,
            ..TrainConfig::default()
        };
        Self {
            method,
            gradient: GradientForm::Dmd2,
            steps,
            fake_updates: 5,
            generator: opt.clone(),
            fake: opt,
            sigma_gen: 80.0,
            sigma_grid: SigmaGrid::default(),
            fake_sigma: FakeSigma::Grid,
            path: PathConfig {
                checkpoints: 8,
                steps: 400,
                spacing: Spacing::Log,
            },
            order: Order::Backward,
            switch_every: 20,
        }
    }

    /// Check the settings.
    pub fn validate(&self) -> Result<()> {
        self.generator.validate()?;
        self.fake.validate()?;
        self.sigma_grid.allowed()?;
        let positive = [
            ("steps", self.steps),
            ("fake_updates", self.fake_updates),
            ("switch_every", self.switch_every),
        ];
        if let Some((f, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(DisbackError::invalid(f, "must be at least 1"));
        }
        if !(self.sigma_gen > 0.0 && self.sigma_gen.is_finite()) {
            return Err(DisbackError::invalid(
                "sigma_gen",
                "must be positive and finite",
            ));
        }
        if self.method == Method::Disback {
            let p = &self.path;
            if p.checkpoints == 0 || p.steps < p.checkpoints {
                return Err(DisbackError::invalid(
                    "path",
                    format!(
                        "need 1 <= checkpoints <= steps, got {} checkpoints over {} steps",
                        p.checkpoints, p.steps
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Stage 1's checkpoint steps s′_1 … s′_N (strictly increasing, the last is M).
    pub fn path_steps(&self) -> Vec<usize> {
        let (n, m) = (self.path.checkpoints, self.path.steps);
        let mut out: Vec<usize> = Vec::with_capacity(n);
        for k in 1..=n {
            let raw = match self.path.spacing {
                Spacing::Log => (m as f64).powf(k as f64 / n as f64).round() as usize,
                Spacing::Linear => (k * m + n / 2) / n,
            };
            // Strictly increasing, and leaving room for the checkpoints still to come.
            let lo = out.last().map_or(1, |&l| l + 1);
            out.push(raw.max(lo).min(m - (n - k)));
        }
        out
    }

    /// Network updates of Stage 1 (0 for the baseline).
    pub fn stage1_updates(&self) -> usize {
        match self.method {
            Method::Baseline => 0,
            Method::Disback => self.path.steps,
        }
    }
}

/// Settings that may differ on resume: where it stops and how often it reports.
pub(crate) fn same_run(a: &DistillConfig, b: &DistillConfig) -> bool {
    let norm = |c: &DistillConfig| {
        let mut c = c.clone();
        c.steps = 0;
        for t in [&mut c.generator, &mut c.fake] {
            t.steps = 0;
            t.log_every = 0;
            t.checkpoint_every = 0;
        }
        c
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_steps_are_strictly_increasing_and_end_at_m() {
        let mut c = DistillConfig::new(Method::Disback, 10, score_core::Precond::edm(0.5), 0);
        for (n, m) in [(8, 400), (5, 5), (1, 10), (10, 12), (3, 1000)] {
            for spacing in [Spacing::Log, Spacing::Linear] {
                c.path = PathConfig {
                    checkpoints: n,
                    steps: m,
                    spacing,
                };
                let s = c.path_steps();
                assert_eq!(s.len(), n);
                assert_eq!(*s.last().unwrap(), m, "{n} {m} {spacing:?}: {s:?}");
                assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
                assert!(s[0] >= 1);
            }
        }
        c.path = PathConfig {
            checkpoints: 4,
            steps: 10_000,
            spacing: Spacing::Log,
        };
        assert_eq!(c.path_steps(), vec![10, 100, 1000, 10_000]);
    }

    #[test]
    fn the_sigma_grid_leaves_out_two_percent_at_each_end() {
        let g = SigmaGrid::default().allowed().unwrap();
        assert_eq!(g.len(), 960);
        let full = score_core::sigmas::karras_sigmas(1000, 0.002, 80.0, 7.0).unwrap();
        // Ascending; the 20 smallest and 20 largest levels are gone.
        assert!(g.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(g[0], full[999 - 20]);
        assert_eq!(*g.last().unwrap(), full[20]);
    }
}
