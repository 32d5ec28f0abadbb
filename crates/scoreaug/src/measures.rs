//! What the study measures on a trained model (all on images `[n, c, h, w]` in f32,
//! row-major; `Denoiser`s see ScoreAug's ω through `cond.augment`).

use burn::tensor::Device;
use score_core::precond::Precond;
use score_core::tensor::{from_f32, randn, stream_rng, tensor1, to_vec_f32};
use score_core::{Conditioning, Denoiser};

use crate::error::{AugError, Result};
use crate::objective::OmegaLayout;
use crate::transforms::Params;

/// Each transform's ω in the model's augmentation vector ([`OmegaLayout`]).
fn omega_cond(
    ts: &[Params],
    layout: &OmegaLayout,
    h: usize,
    w: usize,
    device: &Device,
) -> Conditioning {
    let om: Vec<f32> = ts.iter().flat_map(|t| layout.omega(t, h, w)).collect();
    Conditioning {
        augment: Some(from_f32(om, [ts.len(), layout.dim], device)),
        ..Conditioning::default()
    }
}

fn apply_all(ts: &[Params], x: &[f32], [c, h, w]: [usize; 3]) -> Result<Vec<f32>> {
    let per = c * h * w;
    let mut out = Vec::with_capacity(x.len());
    for (i, t) in ts.iter().enumerate() {
        out.extend(t.apply(&x[i * per..(i + 1) * per], c, h, w)?);
    }
    Ok(out)
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()
}

/// Equivariance error ‖D(T y; σ, ω_T) − T·D(y; σ, 0)‖ / ‖T·D(y; σ, 0)‖ over a batch,
/// y = x₀ + σn (noise from `seed`), one transform per image (`ts`). 0 for the optimal
/// ScoreAug denoiser of an invertible T; a model trained without ω-conditioning cannot
/// reach 0 for transforms it cannot see. ω is written as `layout` says.
#[allow(clippy::too_many_arguments)]
pub fn equivariance_error(
    den: &dyn Denoiser<4>,
    x0: &[f32],
    shape: [usize; 4],
    sigma: f64,
    ts: &[Params],
    layout: &OmegaLayout,
    seed: u64,
    device: &Device,
) -> Result<f64> {
    let [b, c, h, w] = shape;
    let n = to_vec_f32(randn(shape, &mut stream_rng(seed, 0x4551, 0), device))?;
    let y: Vec<f32> = x0
        .iter()
        .zip(&n)
        .map(|(a, e)| a + sigma as f32 * e)
        .collect();
    let s = tensor1(&vec![sigma; b], device);
    let ty = apply_all(ts, &y, [c, h, w])?;
    let cond = omega_cond(ts, layout, h, w, device);
    let lhs = to_vec_f32(den.denoise(from_f32(ty, shape, device), s.clone(), Some(&cond)))?;
    let d = to_vec_f32(den.denoise(from_f32(y, shape, device), s, None))?;
    let rhs = apply_all(ts, &d, [c, h, w])?;
    let diff: Vec<f32> = lhs.iter().zip(&rhs).map(|(a, b)| a - b).collect();
    Ok(norm(&diff) / norm(&rhs).max(f64::MIN_POSITIVE))
}

/// Mean weighted denoising loss λ(σ)·‖D(x₀ + σn; σ) − x₀‖² per image at each σ of
/// `sigmas`, with noise drawn from `seed` per σ (so two sets of the same size share
/// their noise) and ω = 0: the train-vs-held-out gap is the difference of two curves.
pub fn loss_curve(
    den: &dyn Denoiser<4>,
    precond: &Precond,
    x0: &[f32],
    shape: [usize; 4],
    sigmas: &[f64],
    seed: u64,
    device: &Device,
) -> Result<Vec<f64>> {
    let b = shape[0];
    sigmas
        .iter()
        .enumerate()
        .map(|(k, &sigma)| {
            let n = to_vec_f32(randn(
                shape,
                &mut stream_rng(seed, 0x4c4f_5353, k as u64),
                device,
            ))?;
            let y: Vec<f32> = x0
                .iter()
                .zip(&n)
                .map(|(a, e)| a + sigma as f32 * e)
                .collect();
            let s = tensor1(&vec![sigma; b], device);
            let d = to_vec_f32(den.denoise(from_f32(y, shape, device), s, None))?;
            let sq: f64 = d
                .iter()
                .zip(x0)
                .map(|(a, t)| ((a - t) as f64).powi(2))
                .sum();
            Ok(precond.loss_weight(sigma) * sq / b as f64)
        })
        .collect()
}

/// The transforms the leakage test looks for: three rotations and the vertical flip
/// (the horizontal flip is left out: many Fashion-MNIST classes are mirror-symmetric,
/// so a flipped garment is not evidence of leakage).
pub fn leak_transforms() -> Vec<(&'static str, Params)> {
    vec![
        (
            "rot90",
            Params {
                rot: 1,
                ..Params::default()
            },
        ),
        (
            "rot180",
            Params {
                rot: 2,
                ..Params::default()
            },
        ),
        (
            "rot270",
            Params {
                rot: 3,
                ..Params::default()
            },
        ),
        (
            "flip_v",
            Params {
                flip_v: true,
                ..Params::default()
            },
        ),
    ]
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}

/// Leakage rate: the fraction of `samples` whose nearest training image is closer after
/// undoing one of [`leak_transforms`] than as generated, i.e. samples that look like a
/// rotated or upside-down training image more than like an upright one. Returns the
/// rate and the count per transform. Run it on real held-out images too: that is the
/// rate of the test itself on unaugmented data.
pub fn leakage_rate(
    samples: &[f32],
    train: &[f32],
    [c, h, w]: [usize; 3],
) -> Result<(f64, Vec<(&'static str, usize)>)> {
    let per = c * h * w;
    let ts = leak_transforms();
    let mut counts = vec![0usize; ts.len()];
    let n = samples.len() / per;
    for s in samples.chunks_exact(per) {
        let nearest = |img: &[f32]| {
            train
                .chunks_exact(per)
                .map(|t| sq_dist(img, t))
                .fold(f64::INFINITY, f64::min)
        };
        let upright = nearest(s);
        let mut best = (upright, None);
        for (k, (_, t)) in ts.iter().enumerate() {
            let d = nearest(&t.apply_inverse(s, c, h, w)?);
            if d < best.0 {
                best = (d, Some(k));
            }
        }
        if let Some(k) = best.1 {
            counts[k] += 1;
        }
    }
    let leaked: usize = counts.iter().sum();
    let named = ts.iter().map(|(name, _)| *name).zip(counts).collect();
    Ok((leaked as f64 / n.max(1) as f64, named))
}

/// Settings of [`measure`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct MeasureOptions {
    /// σ levels of the equivariance error.
    pub equivariance_sigmas: Vec<f64>,
    /// σ grid of the train / held-out loss curves.
    pub loss_sigmas: Vec<f64>,
    /// Images per set for the equivariance error and the loss curves.
    pub n_eval: usize,
    /// Samples drawn (Heun, Karras grid, ω = 0) for leakage, memorisation and FID.
    pub n_samples: usize,
    /// σ levels of the sampler.
    pub steps: usize,
    /// Seed of the noise (shared between the train and held-out curves).
    pub seed: u64,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        Self {
            equivariance_sigmas: vec![0.1, 0.5, 2.0],
            loss_sigmas: vec![0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0],
            n_eval: 256,
            n_samples: 128,
            steps: 18,
            seed: 0,
        }
    }
}

/// One row of the equivariance table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EquivarianceRow {
    /// Transform kind.
    pub kind: crate::transforms::Kind,
    /// Noise level.
    pub sigma: f64,
    /// Relative error.
    pub error: f64,
}

/// The measures of one trained model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Equivariance error per kind and σ on held-out images.
    pub equivariance: Vec<EquivarianceRow>,
    /// σ grid of the loss curves.
    pub loss_sigmas: Vec<f64>,
    /// Mean weighted loss on training images per σ.
    pub loss_train: Vec<f64>,
    /// The same on held-out images, with the same noise.
    pub loss_heldout: Vec<f64>,
    /// Mean over σ of (held-out − train) / train.
    pub relative_gap: f64,
    /// Fraction of samples that match a rotated / upside-down training image best.
    pub leakage_rate: f64,
    /// Per transform.
    pub leakage_counts: Vec<(&'static str, usize)>,
    /// The leakage test on as many real held-out images: its rate on unaugmented data.
    pub leakage_real: f64,
    /// Memorisation rate (Yoon et al., ratio 1/3) of the samples against training images.
    pub memorization_rate: f64,
    /// FID of the samples against the reference, when one was given.
    pub fid: Option<score_eval::fid::FidEstimate>,
    /// Samples drawn.
    pub n_samples: usize,
}

/// Everything [`measure`] needs about a trained UNet.
pub struct Model<'a> {
    /// The network (EMA weights).
    pub net: &'a score_nn::unet::UNet,
    /// Its preconditioning.
    pub precond: Precond,
    /// The kinds its ScoreAug objective used (for the equivariance table).
    pub kinds: Vec<crate::transforms::Kind>,
    /// How its ω is written ([`OmegaLayout::of`] its augmentation).
    pub omega: OmegaLayout,
}

/// FID against a fixed reference: the network and the reference statistics.
pub type FidSetup<'a> = (
    &'a score_eval::fid::FidInception,
    &'a score_eval::fid::FidReference,
);

fn first(d: &score_io::images::ImageDataset, n: usize) -> (Vec<f32>, [usize; 4]) {
    let n = n.min(d.num_images());
    let [c, h, w] = d.image_shape;
    (d.pixels[..n * c * h * w].to_vec(), [n, c, h, w])
}

/// Draw `n` samples with Heun (ω = 0) in batches of 64.
pub fn samples(
    m: &Model,
    shape: [usize; 3],
    n: usize,
    steps: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<f32>> {
    let stream = (seed, 0x5341_4d50);
    let x = score_train::pipeline::heun_samples(
        m.net,
        m.precond,
        shape,
        n,
        steps,
        stream,
        device,
        |_| {},
    )?;
    Ok(x)
}

/// --n-eval and --n-samples at least 1, and the generated samples (float32 and bytes,
/// with 2048 float64 features for FID) within memory, before any work.
fn check_counts(o: &MeasureOptions, held: &score_io::images::ImageDataset) -> Result<()> {
    for (flag, v) in [("--n-eval", o.n_eval), ("--n-samples", o.n_samples)] {
        if v == 0 {
            return Err(AugError::invalid(flag, "must be at least 1, got 0"));
        }
    }
    let [c, h, w] = held.image_shape;
    score_core::limits::ensure_values_fit(
        "--n-samples",
        o.n_samples as u128,
        (c * h * w * 5 + 2048 * 8) as u128,
        "use a smaller --n-samples",
    )?;
    Ok(())
}

/// All the study's measures of one model: equivariance (held-out), train vs held-out
/// loss, leakage, memorisation and (with `fid`) FID of its samples.
pub fn measure(
    m: &Model,
    train: &score_io::images::ImageDataset,
    held: &score_io::images::ImageDataset,
    o: &MeasureOptions,
    fid: Option<FidSetup>,
    device: &Device,
) -> Result<Report> {
    check_counts(o, held)?;
    let den = score_nn::Preconditioned::new(m.net, m.precond);
    let (hx, hshape) = first(held, o.n_eval);
    let (tx, tshape) = first(train, o.n_eval.min(held.num_images()));
    let [_, c, h, w] = hshape;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(o.seed);
    let mut equivariance = Vec::new();
    for &kind in &m.kinds {
        let ts: Vec<Params> = (0..hshape[0])
            .map(|_| crate::transforms::draw(kind, &Default::default(), &mut rng, h, w))
            .collect();
        for &sigma in &o.equivariance_sigmas {
            let error =
                equivariance_error(&den, &hx, hshape, sigma, &ts, &m.omega, o.seed, device)?;
            equivariance.push(EquivarianceRow { kind, sigma, error });
        }
    }
    // The same number of images on both sides, so that the noise is shared exactly.
    let k = tshape[0].min(hshape[0]);
    let per = c * h * w;
    let curve = |x: &[f32]| {
        loss_curve(
            &den,
            &m.precond,
            &x[..k * per],
            [k, c, h, w],
            &o.loss_sigmas,
            o.seed,
            device,
        )
    };
    let (loss_train, loss_heldout) = (curve(&tx)?, curve(&hx)?);
    let relative_gap = loss_train
        .iter()
        .zip(&loss_heldout)
        .map(|(t, v)| (v - t) / t)
        .sum::<f64>()
        / loss_train.len().max(1) as f64;
    let generated = samples(m, [c, h, w], o.n_samples, o.steps, o.seed, device)?;
    let (leakage_rate, leakage_counts) = self::leakage_rate(&generated, &train.pixels, [c, h, w])?;
    let real_n = o.n_samples.min(held.num_images());
    let (leakage_real, _) =
        self::leakage_rate(&held.pixels[..real_n * per], &train.pixels, [c, h, w])?;
    let g64: Vec<f64> = generated.iter().map(|&v| v as f64).collect();
    let t64 = train.rows_f64();
    let memorization_rate = score_core::metrics::memorization_rate(&g64, &t64, per, 1.0 / 3.0)?;
    let fid = match fid {
        Some((net, reference)) => {
            let bytes = score_eval::fid::quantize_signed(&generated)?;
            let f = net.features(&bytes, [o.n_samples, c, h, w], 16, |_| {})?;
            Some(reference.estimate(&f, 200, o.seed)?)
        }
        None => None,
    };
    Ok(Report {
        equivariance,
        loss_sigmas: o.loss_sigmas.clone(),
        loss_train,
        loss_heldout,
        relative_gap,
        leakage_rate,
        leakage_counts,
        leakage_real,
        memorization_rate,
        fid,
        n_samples: o.n_samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theory::Equivariant;

    /// The identity denoiser D(y) = y: trivially equivariant for every linear T.
    struct Identity;
    impl Denoiser<4> for Identity {
        fn denoise(
            &self,
            x: burn::tensor::Tensor<4>,
            _s: burn::tensor::Tensor<1>,
            _c: Option<&Conditioning>,
        ) -> burn::tensor::Tensor<4> {
            x
        }
    }

    /// Shrinks towards 0 and ignores ω: not equivariant under brightness.
    struct Shrink;
    impl Denoiser<4> for Shrink {
        fn denoise(
            &self,
            x: burn::tensor::Tensor<4>,
            _s: burn::tensor::Tensor<1>,
            _c: Option<&Conditioning>,
        ) -> burn::tensor::Tensor<4> {
            x.clone() / (x.clone() * x + 1.0)
        }
    }

    #[test]
    fn equivariance_error_is_zero_for_the_equivariant_wrapper_only() {
        let dev = Device::flex();
        let shape = [4, 1, 4, 4];
        let x0 = to_vec_f32(randn(shape, &mut stream_rng(1, 0, 0), &dev)).unwrap();
        let ts = vec![
            Params {
                rot: 1,
                ..Params::default()
            },
            Params {
                brightness: 1.2,
                ..Params::default()
            },
            Params {
                flip_v: true,
                ..Params::default()
            },
            Params::default(),
        ];
        let e = equivariance_error(
            &Identity,
            &x0,
            shape,
            0.5,
            &ts,
            &OmegaLayout::of(None),
            0,
            &dev,
        )
        .unwrap();
        assert!(e < 1e-6, "{e}");
        let wrapped = Equivariant { inner: Shrink };
        let e = equivariance_error(
            &wrapped,
            &x0,
            shape,
            0.5,
            &ts,
            &OmegaLayout::of(None),
            0,
            &dev,
        )
        .unwrap();
        // f32 round-off through one inverse and one forward transform: ~1e-7.
        assert!(e < 1e-5, "{e}");
        let e = equivariance_error(
            &Shrink,
            &x0,
            shape,
            0.5,
            &ts,
            &OmegaLayout::of(None),
            0,
            &dev,
        )
        .unwrap();
        assert!(e > 1e-2, "{e}");
    }

    #[test]
    fn leakage_finds_rotated_copies() {
        // Training images: 6 random 5×5 images. Samples: two upright copies and two
        // copies turned by 90° and 180°: exactly half leak.
        let dev = Device::flex();
        let train = to_vec_f32(randn([6, 1, 5, 5], &mut stream_rng(2, 0, 0), &dev)).unwrap();
        let one = |i: usize| &train[i * 25..(i + 1) * 25];
        let mut samples = Vec::new();
        samples.extend_from_slice(one(0));
        samples.extend_from_slice(one(1));
        samples.extend(
            Params {
                rot: 1,
                ..Params::default()
            }
            .apply(one(2), 1, 5, 5)
            .unwrap(),
        );
        samples.extend(
            Params {
                rot: 2,
                ..Params::default()
            }
            .apply(one(3), 1, 5, 5)
            .unwrap(),
        );
        let (rate, counts) = leakage_rate(&samples, &train, [1, 5, 5]).unwrap();
        assert_eq!(rate, 0.5);
        assert_eq!(counts[0], ("rot90", 1));
        assert_eq!(counts[1], ("rot180", 1));
    }
}
