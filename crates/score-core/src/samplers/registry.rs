//! The sampler registry: one enum naming every sampler with its options, parsed from
//! its name and dispatched to its function, and the table of every option a sampler
//! takes ([`OPTIONS`]): its flag, kind of value, samplers and help. Front ends (the
//! CLI's flags) are generated from the table and hand the values back to
//! [`Sampler::build`], so adding a sampler or an option touches this file only.

use super::context::{SampleContext, SampleOutput};
use super::dpmpp::*;
use super::euler::*;
use super::heun::*;
use super::unipc::*;
use crate::denoiser::Denoiser;
use crate::error::{Result, ScoreError};
use std::path::PathBuf;

use burn::tensor::Tensor;

/// A sampler chosen at run time (CLI, configuration files).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Sampler {
    /// [`euler_sample`].
    Euler,
    /// [`heun_sample`].
    Heun(HeunOptions),
    /// [`dpmpp_2m_sample`].
    DpmppTwoM,
    /// [`euler_ancestral_sample`].
    EulerAncestral(AncestralOptions),
    /// DDIM with η (Song et al. 2021): in EDM's variables its update is
    /// [`euler_ancestral_sample`]'s, so it runs that with η = 0 by default (= Euler).
    Ddim(AncestralOptions),
    /// [`dpmpp_2m_sde_sample`].
    DpmppTwoMSde(SdeOptions),
    /// [`dpmpp_3m_sde_sample`].
    DpmppThreeMSde(SdeOptions),
    /// [`unipc_sample`].
    UniPc(UniPcOptions),
    /// [`super::dpm_solver_v3::dpm_solver_v3_sample`] with its model statistics (not
    /// parsed from a name: it needs statistics, see `scorelab ems`).
    DpmSolverV3(Box<super::dpm_solver_v3::V3Sampler>),
}

impl std::str::FromStr for Sampler {
    type Err = ScoreError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "euler" => Self::Euler,
            "heun" => Self::Heun(HeunOptions::default()),
            "dpmpp-2m" | "dpm++2m" | "dpmpp2m" => Self::DpmppTwoM,
            "euler-ancestral" | "euler-a" => Self::EulerAncestral(AncestralOptions::default()),
            "ddim" => Self::Ddim(AncestralOptions {
                eta: 0.0,
                ..AncestralOptions::default()
            }),
            "dpmpp-2m-sde" => Self::DpmppTwoMSde(SdeOptions::default()),
            "dpmpp-3m-sde" => Self::DpmppThreeMSde(SdeOptions::default()),
            "unipc" => Self::UniPc(UniPcOptions::default()),
            _ => {
                return Err(ScoreError::invalid(
                    "sampler",
                    format!(
                        "unknown sampler '{s}', expected one of {}",
                        Sampler::NAMES.join(", ")
                    ),
                ));
            }
        })
    }
}

impl Sampler {
    /// Every sampler's CLI name.
    pub const NAMES: [&'static str; 8] = [
        "euler",
        "heun",
        "dpmpp-2m",
        "euler-ancestral",
        "ddim",
        "dpmpp-2m-sde",
        "dpmpp-3m-sde",
        "unipc",
    ];

    /// All samplers with default options, in the order of [`Sampler::NAMES`].
    pub fn all() -> Vec<Sampler> {
        Self::NAMES
            .iter()
            .map(|n| n.parse().unwrap_or(Self::Euler))
            .collect()
    }

    /// The sampler's CLI name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Euler => "euler",
            Self::Heun(_) => "heun",
            Self::DpmppTwoM => "dpmpp-2m",
            Self::EulerAncestral(_) => "euler-ancestral",
            Self::Ddim(_) => "ddim",
            Self::DpmppTwoMSde(_) => "dpmpp-2m-sde",
            Self::DpmppThreeMSde(_) => "dpmpp-3m-sde",
            Self::UniPc(_) => "unipc",
            Self::DpmSolverV3(_) => "dpm-solver-v3",
        }
    }

    /// Set the seed of a stochastic sampler (no effect on deterministic ones).
    pub fn with_seed(self, seed: u64) -> Self {
        match self {
            Self::Heun(o) => Self::Heun(HeunOptions { seed, ..o }),
            Self::EulerAncestral(o) => Self::EulerAncestral(AncestralOptions { seed, ..o }),
            Self::Ddim(o) => Self::Ddim(AncestralOptions { seed, ..o }),
            Self::DpmppTwoMSde(o) => Self::DpmppTwoMSde(SdeOptions { seed, ..o }),
            Self::DpmppThreeMSde(o) => Self::DpmppThreeMSde(SdeOptions { seed, ..o }),
            other => other,
        }
    }

    /// Network evaluations this sampler spends on a grid of `levels` σ values (ending at
    /// 0) when started at index `k`.
    pub fn nfe(&self, levels: usize, k: usize) -> usize {
        let steps = levels.saturating_sub(1 + k);
        match self {
            Self::Heun(_) => (2 * steps).saturating_sub(1),
            _ => steps,
        }
    }

    /// Run this sampler. A final state with NaN or infinite values is an error naming
    /// the sampler ([`ScoreError::NonFiniteResult`]), never a result.
    pub fn sample<const D: usize, M: Denoiser<D> + ?Sized>(
        &self,
        den: &M,
        sigmas: &[f64],
        x: Tensor<D>,
        ctx: &mut SampleContext<'_, D>,
    ) -> Result<SampleOutput<D>> {
        let out = self.run(den, sigmas, x, ctx)?;
        crate::tensor::ensure_finite(
            &out.x,
            &format!("sampler {}", self.name()),
            "the denoiser returned values out of range (a guidance weight or step size far too large, or a damaged checkpoint): lower --guidance, check the model",
        )?;
        Ok(out)
    }

    fn run<const D: usize, M: Denoiser<D> + ?Sized>(
        &self,
        den: &M,
        sigmas: &[f64],
        x: Tensor<D>,
        ctx: &mut SampleContext<'_, D>,
    ) -> Result<SampleOutput<D>> {
        match self {
            Self::Euler => euler_sample(den, sigmas, x, ctx),
            Self::Heun(o) => heun_sample(den, sigmas, x, o, ctx),
            Self::DpmppTwoM => dpmpp_2m_sample(den, sigmas, x, ctx),
            Self::EulerAncestral(o) | Self::Ddim(o) => {
                euler_ancestral_sample(den, sigmas, x, o, ctx)
            }
            Self::DpmppTwoMSde(o) => dpmpp_2m_sde_sample(den, sigmas, x, o, ctx),
            Self::DpmppThreeMSde(o) => dpmpp_3m_sde_sample(den, sigmas, x, o, ctx),
            Self::UniPc(o) => unipc_sample(den, sigmas, x, o, ctx),
            Self::DpmSolverV3(v) => {
                super::dpm_solver_v3::dpm_solver_v3_sample(den, &v.stats, sigmas, x, &v.opts, ctx)
            }
        }
    }
}

/// The kind of value a sampler option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// A real number (checked finite and non-negative where the option says so).
    Number,
    /// A whole number.
    Count,
    /// A switch: present or not.
    Switch,
    /// A file.
    File,
}

/// One option of one or more samplers.
#[derive(Debug, Clone, Copy)]
pub struct SamplerOption {
    /// The flag, with its dashes (`--churn`); also the name errors use.
    pub flag: &'static str,
    /// The kind of value.
    pub kind: OptionKind,
    /// The samplers (by [`Sampler::name`]) that take it.
    pub samplers: &'static [&'static str],
    /// What it does, with its default.
    pub help: &'static str,
}

impl SamplerOption {
    /// The flag without its dashes (`churn`).
    pub fn name(&self) -> &'static str {
        self.flag.trim_start_matches('-')
    }
}

const NOISY: &[&str] = &["euler-ancestral", "ddim", "dpmpp-2m-sde", "dpmpp-3m-sde"];

/// Every option a sampler takes.
pub const OPTIONS: &[SamplerOption] = &[
    SamplerOption {
        flag: "--churn",
        kind: OptionKind::Number,
        samplers: &["heun"],
        help: "heun: S_churn, the noise injected over the run (EDM Algorithm 2: γ = min(S_churn/N, √2 − 1) per step, so values past N(√2 − 1) act alike; 0 = deterministic) [default: 0]",
    },
    SamplerOption {
        flag: "--s-tmin",
        kind: OptionKind::Number,
        samplers: &["heun"],
        help: "heun: churn only where σ ≥ S_tmin [default: 0]",
    },
    SamplerOption {
        flag: "--s-tmax",
        kind: OptionKind::Number,
        samplers: &["heun"],
        help: "heun: churn only where σ ≤ S_tmax [default: inf]",
    },
    SamplerOption {
        flag: "--s-noise",
        kind: OptionKind::Number,
        samplers: &[
            "heun",
            "euler-ancestral",
            "ddim",
            "dpmpp-2m-sde",
            "dpmpp-3m-sde",
        ],
        help: "heun, euler-ancestral, ddim and the SDE samplers: scale of the injected noise [default: 1]",
    },
    SamplerOption {
        flag: "--eta",
        kind: OptionKind::Number,
        samplers: NOISY,
        help: "euler-ancestral and ddim: the fraction of the ancestral noise (1 = ancestral, 0 = Euler) [default: 1, ddim 0]; dpmpp-2m-sde and dpmpp-3m-sde: the SDE's η (0 = the ODE solver) [default: 1]",
    },
    SamplerOption {
        flag: "--order",
        kind: OptionKind::Count,
        samplers: &["unipc", "dpm-solver-v3"],
        help: "unipc: the predictor order p, 1 to 3 (with the corrector the order is p + 1) [default: 2]; dpm-solver-v3: its order, 1 to 3 [default: 3]",
    },
    SamplerOption {
        flag: "--no-corrector",
        kind: OptionKind::Switch,
        samplers: &["unipc", "dpm-solver-v3"],
        help: "unipc: predictor only, without the corrector UniC; dpm-solver-v3: without its corrector (on by default at 6 steps or fewer, as the reference)",
    },
    SamplerOption {
        flag: "--bh1",
        kind: OptionKind::Switch,
        samplers: &["unipc"],
        help: "unipc: B(h) = h (bh1) instead of e^h − 1 (bh2)",
    },
    SamplerOption {
        flag: "--exact-phi3",
        kind: OptionKind::Switch,
        samplers: &["dpmpp-3m-sde"],
        help: "dpmpp-3m-sde: the exact third-order coefficient 2φ₃ instead of k-diffusion's φ₃",
    },
    SamplerOption {
        flag: "--ems",
        kind: OptionKind::File,
        samplers: &["dpm-solver-v3"],
        help: "dpm-solver-v3: the model statistics written by `scorelab ems`",
    },
];

/// A value given for a sampler option.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// For [`OptionKind::Number`].
    Number(f64),
    /// For [`OptionKind::Count`].
    Count(usize),
    /// For [`OptionKind::Switch`] (present).
    Switch,
    /// For [`OptionKind::File`].
    File(PathBuf),
}

/// The options given, by flag, as [`Sampler::build`] reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GivenOptions(pub Vec<(&'static str, OptionValue)>);

impl GivenOptions {
    /// The value given for `flag`, if any.
    pub fn get(&self, flag: &str) -> Option<&OptionValue> {
        self.0.iter().find(|(f, _)| *f == flag).map(|(_, v)| v)
    }
    fn number(&self, flag: &str) -> Option<f64> {
        match self.get(flag) {
            Some(OptionValue::Number(v)) => Some(*v),
            _ => None,
        }
    }
    fn count(&self, flag: &str) -> Option<usize> {
        match self.get(flag) {
            Some(OptionValue::Count(v)) => Some(*v),
            _ => None,
        }
    }
    fn switch(&self, flag: &str) -> bool {
        self.get(flag).is_some()
    }
}

fn check_order(order: usize, what: &str) -> Result<usize> {
    if (1..=3).contains(&order) {
        Ok(order)
    } else {
        Err(ScoreError::invalid(
            "--order",
            format!("{what} is 1, 2 or 3, got {order}"),
        ))
    }
}

impl Sampler {
    /// The sampler `name` (one of [`Sampler::NAMES`] or `dpm-solver-v3`) with the
    /// options `given` and `seed` for its noise. A number that is negative or not
    /// finite, an option the sampler does not take, or an order outside 1–3 is an
    /// error naming the flag; dpm-solver-v3 needs `--ems`.
    pub fn build(name: &str, seed: u64, given: &GivenOptions) -> Result<Sampler> {
        for (flag, v) in &given.0 {
            if let OptionValue::Number(v) = v
                && !(*v >= 0.0 && v.is_finite())
            {
                return Err(ScoreError::invalid(
                    "sampler option",
                    format!("{flag}: must be non-negative and finite, got {v}"),
                ));
            }
        }
        if name != "dpm-solver-v3" {
            // Parse first, so that an unknown name is reported before its options.
            name.parse::<Sampler>()?;
        }
        if let Some((flag, _)) = given.0.iter().find(|(f, _)| {
            !OPTIONS
                .iter()
                .any(|o| o.flag == *f && o.samplers.contains(&name))
        }) {
            return Err(ScoreError::invalid(
                "sampler option",
                format!("{flag} does not apply to the {name} sampler"),
            ));
        }
        Ok(match name {
            "dpm-solver-v3" => Self::dpm_solver_v3(given)?,
            _ => Self::with_options(name.parse::<Sampler>()?.with_seed(seed), given)?,
        })
    }

    fn dpm_solver_v3(given: &GivenOptions) -> Result<Sampler> {
        let Some(OptionValue::File(path)) = given.get("--ems") else {
            return Err(ScoreError::invalid(
                "--ems",
                "dpm-solver-v3 needs --ems FILE: compute the model statistics once with `scorelab ems --checkpoint … --out ems.json`",
            ));
        };
        let order = check_order(given.count("--order").unwrap_or(3), "DPM-Solver-v3's order")?;
        let stats = super::dpm_solver_v3::ModelStatistics::load(path)?;
        Ok(Sampler::DpmSolverV3(Box::new(
            super::dpm_solver_v3::V3Sampler {
                stats,
                opts: super::dpm_solver_v3::V3Options {
                    order,
                    corrector: given.switch("--no-corrector").then_some(false),
                    ..Default::default()
                },
            },
        )))
    }

    fn with_options(self, given: &GivenOptions) -> Result<Sampler> {
        Ok(match self {
            Sampler::Heun(o) => Sampler::Heun(churn(o, given)?),
            Sampler::EulerAncestral(o) => Sampler::EulerAncestral(noisy(o, given)?),
            Sampler::Ddim(o) => Sampler::Ddim(noisy(o, given)?),
            Sampler::DpmppTwoMSde(o) => Sampler::DpmppTwoMSde(sde(o, given)),
            Sampler::DpmppThreeMSde(o) => Sampler::DpmppThreeMSde(sde(o, given)),
            Sampler::UniPc(mut o) => {
                o.order = check_order(
                    given.count("--order").unwrap_or(o.order),
                    "UniPC's predictor order",
                )?;
                o.corrector = !given.switch("--no-corrector");
                o.bh2 = !given.switch("--bh1");
                Sampler::UniPc(o)
            }
            other => other,
        })
    }
}

/// Ancestral options; η above 1 is refused: σ_up = η·√(σ²_next(σ² − σ²_next)/σ²) is
/// capped at σ_next (k-diffusion's `get_ancestral_step`), so every η ≥ 1 would run as 1.
fn noisy(mut o: AncestralOptions, given: &GivenOptions) -> Result<AncestralOptions> {
    o.eta = given.number("--eta").unwrap_or(o.eta);
    if o.eta > 1.0 {
        return Err(ScoreError::invalid(
            "sampler option",
            format!(
                "--eta {}: euler-ancestral and ddim take 0 to 1 (the noise added per step is capped at σ_next, so any η above 1 would act as 1)",
                o.eta
            ),
        ));
    }
    o.s_noise = given.number("--s-noise").unwrap_or(o.s_noise);
    Ok(o)
}

/// Heun's churn options. S_tmin, S_tmax and S_noise only shape the churn, so without
/// `--churn` above 0 they would change nothing, and a window with S_tmin > S_tmax would
/// switch the churn off: both are refused rather than ignored.
fn churn(mut o: HeunOptions, given: &GivenOptions) -> Result<HeunOptions> {
    o.s_churn = given.number("--churn").unwrap_or(o.s_churn);
    o.s_tmin = given.number("--s-tmin").unwrap_or(o.s_tmin);
    o.s_tmax = given.number("--s-tmax").unwrap_or(o.s_tmax);
    o.s_noise = given.number("--s-noise").unwrap_or(o.s_noise);
    let shaping = ["--s-tmin", "--s-tmax", "--s-noise"];
    if let Some(flag) = shaping.iter().find(|f| given.number(f).is_some())
        && o.s_churn == 0.0
    {
        return Err(ScoreError::invalid(
            "sampler option",
            format!("{flag} shapes heun's churn, which is off: give --churn above 0 too"),
        ));
    }
    if o.s_tmin > o.s_tmax {
        return Err(ScoreError::invalid(
            "sampler option",
            format!(
                "--s-tmin {} is above --s-tmax {}: the churn window would be empty",
                o.s_tmin, o.s_tmax
            ),
        ));
    }
    Ok(o)
}

fn sde(mut o: SdeOptions, given: &GivenOptions) -> SdeOptions {
    o.eta = given.number("--eta").unwrap_or(o.eta);
    o.s_noise = given.number("--s-noise").unwrap_or(o.s_noise);
    o.exact_phi3 = given.switch("--exact-phi3");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(v: &[(&'static str, OptionValue)]) -> GivenOptions {
        GivenOptions(v.to_vec())
    }

    #[test]
    fn the_option_table_names_only_real_samplers_and_each_sampler_option_is_applied() {
        for o in OPTIONS {
            assert!(o.flag.starts_with("--"), "{}", o.flag);
            for s in o.samplers {
                assert!(
                    Sampler::NAMES.contains(s) || *s == "dpm-solver-v3",
                    "{} names unknown sampler {s}",
                    o.flag
                );
            }
        }
        let h = Sampler::build(
            "heun",
            7,
            &given(&[
                ("--churn", OptionValue::Number(40.0)),
                ("--s-noise", OptionValue::Number(1.003)),
            ]),
        )
        .unwrap();
        let Sampler::Heun(o) = h else { panic!("{h:?}") };
        assert_eq!((o.s_churn, o.s_noise, o.seed), (40.0, 1.003, 7));
        let u = Sampler::build(
            "unipc",
            0,
            &given(&[
                ("--order", OptionValue::Count(3)),
                ("--bh1", OptionValue::Switch),
            ]),
        )
        .unwrap();
        let Sampler::UniPc(o) = u else {
            panic!("{u:?}")
        };
        assert_eq!((o.order, o.bh2, o.corrector), (3, false, true));
        let d = Sampler::build("ddim", 0, &GivenOptions::default()).unwrap();
        assert!(matches!(d, Sampler::Ddim(o) if o.eta == 0.0));
        let s = Sampler::build(
            "dpmpp-3m-sde",
            0,
            &given(&[("--exact-phi3", OptionValue::Switch)]),
        )
        .unwrap();
        assert!(matches!(s, Sampler::DpmppThreeMSde(o) if o.exact_phi3));
    }

    #[test]
    fn options_a_sampler_does_not_take_and_bad_values_are_refused_by_flag() {
        let err = |name: &str, v: &[(&'static str, OptionValue)]| {
            Sampler::build(name, 0, &given(v)).unwrap_err().to_string()
        };
        let e = err("dpmpp-2m", &[("--churn", OptionValue::Number(1.0))]);
        assert!(
            e.contains("--churn does not apply to the dpmpp-2m sampler"),
            "{e}"
        );
        let e = err("dpmpp-2m-sde", &[("--exact-phi3", OptionValue::Switch)]);
        assert!(e.contains("--exact-phi3 does not apply"), "{e}");
        let e = err("ddim", &[("--eta", OptionValue::Number(1.5))]);
        assert!(e.contains("--eta 1.5") && e.contains("0 to 1"), "{e}");
        let e = err("heun", &[("--eta", OptionValue::Number(f64::NAN))]);
        assert!(e.contains("--eta: must be non-negative and finite"), "{e}");
        let e = err("unipc", &[("--order", OptionValue::Count(4))]);
        assert!(e.contains("--order") && e.contains("got 4"), "{e}");
        let e = err("dpm-solver-v3", &[]);
        assert!(e.contains("needs --ems"), "{e}");
        let e = err("heun", &[("--ems", OptionValue::File("x.json".into()))]);
        assert!(
            e.contains("--ems does not apply to the heun sampler"),
            "{e}"
        );
        let e = err("bogus", &[]);
        assert!(e.contains("unknown sampler 'bogus'"), "{e}");
    }

    /// A denoiser whose output overflows to infinity at small σ, as a huge guidance
    /// weight does.
    struct Overflowing;

    impl Denoiser<2> for Overflowing {
        fn denoise(
            &self,
            x: Tensor<2>,
            sigma: Tensor<1>,
            _: Option<&crate::denoiser::Conditioning>,
        ) -> Tensor<2> {
            let s = sigma.reshape([-1, 1]);
            x.mul_scalar(1e30).div(s.clone().mul(s))
        }
    }

    #[test]
    fn every_sampler_refuses_a_non_finite_result_by_name() {
        // Issue 26: NaN images came out with exit 0.
        let dev = burn::tensor::Device::flex();
        let sigmas = crate::sigmas::karras_sigmas(4, 0.002, 80.0, 7.0).unwrap();
        for sampler in Sampler::all() {
            let x = Tensor::<2>::ones([3, 2], &dev);
            let e = sampler
                .sample(&Overflowing, &sigmas, x, &mut SampleContext::new())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("sampler {}", sampler.name())) && e.contains("NaN or infinite"),
                "{e}"
            );
        }
    }
}
