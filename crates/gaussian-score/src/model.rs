//! A fitted closed-form score model on disk: a Gaussian or a Gaussian mixture, in one
//! safetensors file (float64 tensors, `scorelab.gaussian-score` metadata naming the kind).

use std::path::Path;

use burn::tensor::Tensor;
use score_core::{Conditioning, Denoiser};

use crate::error::{GaussError, Result};
use crate::gaussian::{GaussianScore, load_tensors, save_tensors};
use crate::mixture::MixtureScore;

/// A Gaussian or a mixture, as saved by `scorelab gaussian fit`.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreModel {
    /// One Gaussian.
    Gaussian(GaussianScore),
    /// A mixture.
    Mixture(MixtureScore),
}

impl ScoreModel {
    /// Dimension d.
    pub fn dim(&self) -> usize {
        match self {
            Self::Gaussian(g) => g.dim(),
            Self::Mixture(m) => m.dim(),
        }
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            Self::Gaussian(g) => format!("Gaussian, d = {}, rank {}", g.dim(), g.rank()),
            Self::Mixture(m) => format!(
                "mixture of {} Gaussians, d = {}",
                m.components.len(),
                m.dim()
            ),
        }
    }

    /// Save to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            Self::Gaussian(g) => g.save(path),
            Self::Mixture(m) => {
                let mut items = vec![("weights".into(), vec![m.weights.len()], m.weights.clone())];
                for (i, c) in m.components.iter().enumerate() {
                    items.extend(c.tensors(&format!("c{i}.")));
                }
                save_tensors(path, "mixture", &items)
            }
        }
    }

    /// Load from `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let (kind, t) = load_tensors(path)?;
        let bad = |d: String| GaussError::Model {
            path: path.into(),
            detail: d,
        };
        let get = |k: &str| {
            t.get(k)
                .cloned()
                .ok_or_else(|| bad(format!("tensor '{k}' is missing")))
        };
        match kind.as_str() {
            "gaussian" => Ok(Self::Gaussian(GaussianScore::load(path)?)),
            "mixture" => {
                let weights = get("weights")?;
                let mut components = Vec::new();
                for i in 0..weights.len() {
                    let g = GaussianScore::from_tensors(&format!("c{i}."), |k| {
                        get(k).map_err(|e| crate::error::invalid("model", e.to_string()))
                    })
                    .map_err(|e| bad(format!("component {i}: {e}")))?;
                    components.push(g);
                }
                if components.is_empty()
                    || components.iter().any(|c| c.dim() != components[0].dim())
                {
                    return Err(bad("components: empty or of different dimensions".into()));
                }
                Ok(Self::Mixture(MixtureScore {
                    weights,
                    components,
                }))
            }
            other => Err(bad(format!(
                "kind: '{other}' is neither 'gaussian' nor 'mixture'"
            ))),
        }
    }

    /// The Gaussian, or an error naming the file when this is a mixture (the closed-form
    /// PF-ODE solution and teleportation need one Gaussian).
    pub fn gaussian(&self) -> Result<&GaussianScore> {
        match self {
            Self::Gaussian(g) => Ok(g),
            Self::Mixture(_) => Err(crate::error::invalid(
                "model",
                "the closed-form solution needs a single Gaussian (fit without --components)",
            )),
        }
    }
}

impl<const D: usize> Denoiser<D> for ScoreModel {
    fn denoise(&self, x: Tensor<D>, sigma: Tensor<1>, cond: Option<&Conditioning>) -> Tensor<D> {
        match self {
            Self::Gaussian(g) => g.denoise(x, sigma, cond),
            Self::Mixture(m) => m.denoise(x, sigma, cond),
        }
    }
}
