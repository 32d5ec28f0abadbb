//! What a sampling run is given and what it reports, and the pieces every way of
//! sampling shares: the initial noise, the conditioning, writing the samples.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use gaussian_score::Skip;
use score_core::samplers::Sampler;
use score_core::sigmas::GridKind;
use score_core::tensor::{randn, stream_rng, to_vec_f32};
use score_io::npy::{npy_f32_bytes, read_npy_finite};
use score_nn::network::ImageNet;
use score_train::pipeline::{ImageCondition, Weights};
use serde::Serialize;

use crate::error::{Result, invalid};

/// A σ grid: its kind, levels and range (the kind's own where `None`), and for the
/// Karras grid its ρ.
#[derive(Debug, Clone)]
pub struct GridSpec {
    /// karras, vp, ve, log-uniform or linear.
    pub kind: GridKind,
    /// Levels N (σ_N = 0 is appended).
    pub steps: usize,
    /// Smallest σ.
    pub sigma_min: Option<f64>,
    /// Largest σ.
    pub sigma_max: Option<f64>,
    /// The Karras grid's ρ [7].
    pub rho: Option<f64>,
}

impl GridSpec {
    /// The grid's σ levels.
    pub fn sigmas(&self) -> Result<Vec<f64>> {
        Ok(match (self.kind, self.rho) {
            (GridKind::Karras, Some(rho)) => {
                let (lo, hi) = self.kind.default_range();
                score_core::sigmas::karras_sigmas(
                    self.steps,
                    self.sigma_min.unwrap_or(lo),
                    self.sigma_max.unwrap_or(hi),
                    rho,
                )?
            }
            (kind, Some(_)) => {
                let name = serde_json::to_value(kind).unwrap_or_default();
                let name = name.as_str().unwrap_or("this grid");
                return Err(invalid(format!(
                    "--rho applies to the karras grid, not {name}"
                )));
            }
            (kind, None) => kind.build_or_default(self.steps, self.sigma_min, self.sigma_max)?,
        })
    }
}

/// Teleportation: the first levels replaced by a Gaussian model's closed-form solution.
#[derive(Debug, Clone)]
pub struct TeleportSpec {
    /// The Gaussian model (`scorelab gaussian fit`).
    pub model: PathBuf,
    /// How many levels to skip.
    pub skip: Skip,
    /// Teleport and sample in VP coordinates (deterministic DDIM or Euler).
    pub vp: bool,
}

/// What to sample and where to write it.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// The checkpoint.
    pub checkpoint: PathBuf,
    /// Which of its weights.
    pub weights: Weights,
    /// Number of samples.
    pub n: usize,
    /// The sampler (from the registry, `score_core::samplers::Sampler::build`)
    /// [`None`: Heun with EDM's defaults].
    pub sampler: Option<Sampler>,
    /// The σ grid [`None`: Karras, 18 levels, EDM's range and ρ].
    pub grid: Option<GridSpec>,
    /// DPM-Solver-v3's statistics file, checked against this checkpoint and grid.
    pub ems: Option<PathBuf>,
    /// Class-conditional checkpoints: the class of every sample [classes in turn].
    pub class: Option<usize>,
    /// Classifier-free guidance scale (1 = none).
    pub guidance: f64,
    /// Start from this unit-Gaussian noise (`.npy`, `[n, …]`) instead of drawing it.
    pub noise: Option<PathBuf>,
    /// Teleportation.
    pub teleport: Option<TeleportSpec>,
    /// Sample in batches of this many images, one PNG per image ([`crate::per_image`]).
    pub batch: Option<usize>,
    /// Output folder.
    pub out: PathBuf,
    /// Seed of the initial noise (and of stochastic samplers).
    pub seed: u64,
}

impl SampleSpec {
    /// The sampler: the one stated, or Heun with EDM's defaults (as `scorelab sample`
    /// builds it without `--sampler`).
    pub fn sampler(&self) -> Result<Sampler> {
        match &self.sampler {
            Some(s) => Ok(s.clone()),
            None => Ok(Sampler::build(
                "heun",
                self.seed,
                &score_core::samplers::GivenOptions::default(),
            )?),
        }
    }

    /// The σ grid: the one stated, or Karras with 18 levels.
    pub fn grid(&self) -> GridSpec {
        self.grid.clone().unwrap_or(GridSpec {
            kind: GridKind::Karras,
            steps: 18,
            sigma_min: None,
            sigma_max: None,
            rho: None,
        })
    }
}

/// What a sampling run did.
#[derive(Debug, Clone, Serialize)]
pub struct SampleReport {
    /// The checkpoint.
    pub checkpoint: PathBuf,
    /// The step it was trained to.
    pub trained_steps: usize,
    /// The sampler's name (`one-step` for a one-step generator).
    pub sampler: String,
    /// σ levels of the grid (0 for a one-step generator).
    pub steps: usize,
    /// Denoiser evaluations, the automatic skip's included.
    pub nfe: usize,
    /// Of those, the automatic skip's calibration.
    pub calibration_nfe: usize,
    /// Network calls (two per evaluation under classifier-free guidance).
    pub network_calls: usize,
    /// The grid level teleportation started from.
    pub teleport_skip: Option<usize>,
    /// A one-step generator's σ.
    pub sigma_gen: Option<f64>,
    /// Samples.
    pub n: usize,
    /// Wall time.
    pub seconds: f64,
    /// The output folder.
    pub out: PathBuf,
    /// Image by image: images written and images already there.
    #[serde(flatten)]
    pub per_image: Option<PerImage>,
}

/// The random stream of a run's initial noise (distinct from training's streams).
const STREAM_NOISE: u64 = 0x4e4f_4953;

/// Unit-Gaussian initial noise of `shape`: read from `path` (its size checked), else
/// drawn from `seed`.
pub fn initial_noise(
    path: Option<&Path>,
    shape: &[usize],
    seed: u64,
    dev: &Device,
) -> Result<Vec<f32>> {
    let n = score_core::limits::element_count("--n", shape)?;
    let Some(p) = path else {
        let mut rng = stream_rng(seed, STREAM_NOISE, 0);
        return Ok(to_vec_f32(randn([n], &mut rng, dev))?);
    };
    let arr = read_npy_finite(p)?;
    if arr.data.len() != n {
        return Err(invalid(format!(
            "{}: noise has shape {:?} ({} values), expected {shape:?}",
            p.display(),
            arr.shape,
            arr.data.len()
        )));
    }
    Ok(arr.data.iter().map(|&v| v as f32).collect())
}

/// `samples.npy` (and `samples.png` for images) in `out`, as one unit: a failure never
/// leaves a new one beside an old one.
pub(crate) fn write_samples(
    out: &Path,
    shape: &[usize],
    values: &[f32],
    png: Option<&[u8]>,
) -> Result<()> {
    let npy = npy_f32_bytes(shape, values)?;
    let (npy_path, png_path) = (out.join("samples.npy"), out.join("samples.png"));
    let mut files: Vec<(&Path, &[u8])> = vec![(&npy_path, &npy)];
    if let Some(p) = png {
        files.push((&png_path, p));
    }
    score_core::fs::write_atomic_all(&files)?;
    Ok(())
}

/// The conditioning of images `range`: classes (`class`, else image i's class is
/// i mod K) and the guidance scale for a class-conditional network; none for an
/// unconditional one (where a class or a guidance scale other than 1 is an error).
pub(crate) fn image_condition(
    net: &ImageNet,
    spec: &SampleSpec,
    range: std::ops::Range<usize>,
    dev: &Device,
) -> Result<ImageCondition> {
    let k = net.label_dim();
    if k == 0 {
        if spec.class.is_some() || spec.guidance != 1.0 {
            return Err(invalid(format!(
                "--class/--guidance: {} is not class-conditional",
                spec.checkpoint.display()
            )));
        }
        return Ok(ImageCondition::none());
    }
    if let Some(c) = spec.class.filter(|&c| c >= k) {
        return Err(invalid(format!(
            "--class {c}: the checkpoint has classes 0..{}",
            k - 1
        )));
    }
    if !spec.guidance.is_finite() {
        return Err(invalid(format!(
            "--guidance: must be finite, got {}",
            spec.guidance
        )));
    }
    let classes: Vec<usize> = range.map(|i| spec.class.unwrap_or(i % k)).collect();
    Ok(ImageCondition::classes(&classes, k, spec.guidance, dev))
}

/// What an image-by-image run did.
#[derive(Debug, Clone, Serialize)]
pub struct PerImage {
    /// Images per batch.
    pub batch: usize,
    /// Images written by this run.
    pub written: usize,
    /// Images already there, kept.
    pub kept: usize,
    /// The folder of the PNGs.
    pub images: PathBuf,
    /// Whether samples.npy and samples.png of the whole set were written too.
    pub samples_npy: bool,
}
