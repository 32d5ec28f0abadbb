//! The sampler registry: one enum naming every sampler with its options, parsed from
//! its name and dispatched to its function.

use super::context::{SampleContext, SampleOutput};
use super::dpmpp::*;
use super::euler::*;
use super::heun::*;
use super::unipc::*;
use crate::denoiser::Denoiser;
use crate::error::{Result, ScoreError};
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

    /// Run this sampler.
    pub fn sample<const D: usize, M: Denoiser<D> + ?Sized>(
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
