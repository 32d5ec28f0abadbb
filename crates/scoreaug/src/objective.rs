//! ScoreAug, EDM's non-leaky augmentation and their combination as
//! `score_train::train::Objective`s: the one training loop of score-core trains them.
//!
//! Per sample, with x₀ the clean image, σ its noise level and n its noise:
//! - NLA (Karras et al. 2022): x' = T₁(x₀), input x' + σn, target x'.
//! - ScoreAug (Hou et al. 2025): input T₂(x' + σn), target T₂(x') (x' = x₀ without NLA).
//!
//! NLA is EDM's pipeline as EDM runs it ([`crate::edm_pipe`]: flips, scaling, rotation,
//! anisotropy, fractional translation through its resampling filter); runs recorded
//! before it existed, and `--nla-set blit`, use the earlier set ([`Nla`]: flips, rot90,
//! zero-padded integer translation).
//!
//! The network sees ω = [ω(T₁), ω(T₂)] ([`Augment::augment_dim`] numbers: EDM's 9 labels
//! or the blit set's 8, then ScoreAug's 8) through the UNet's `map_augment`, unless
//! conditioning is switched off (the leakage control: ω = 0 always). Sampling passes no
//! ω, which is ω = 0, the identity.

use burn::tensor::{Device, Tensor};
use rand::rngs::StdRng;
use score_core::Conditioning;
use score_core::tensor::{from_f32, to_vec_f32};
use score_train::train::{Objective, Regression};

use crate::edm_pipe::{EdmPipe, Geometric};
use crate::error::{AugError, Result};
use crate::transforms::{Kind, Nla, OMEGA_DIM, OneOf, Params};

/// Which augmentation a run trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Plain denoising.
    #[serde(rename = "none")]
    None,
    /// EDM's non-leaky augmentation.
    #[serde(rename = "nla")]
    Nla,
    /// ScoreAug.
    #[serde(rename = "scoreaug")]
    ScoreAug,
    /// NLA on the clean image, then ScoreAug on the noisy one.
    #[serde(rename = "nla+scoreaug")]
    NlaScoreAug,
}

impl Mode {
    /// Parse `none`, `nla`, `scoreaug` or `nla+scoreaug`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Mode::None),
            "nla" => Ok(Mode::Nla),
            "scoreaug" => Ok(Mode::ScoreAug),
            "nla+scoreaug" => Ok(Mode::NlaScoreAug),
            other => Err(AugError::invalid(
                "augment",
                format!("'{other}': expected none, nla, scoreaug or nla+scoreaug"),
            )),
        }
    }
}

/// The augmentation objective (all three modes and the leakage control).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// The mode.
    pub mode: Mode,
    /// The blit set's sampler, NLA's transforms when `edm` is `None`.
    pub nla: Nla,
    /// EDM's pipeline, NLA's transforms (used by `nla` and `nla+scoreaug`); `None` in
    /// runs recorded before it existed and with `--nla-set blit`.
    #[serde(default)]
    pub edm: Option<EdmPipe>,
    /// ScoreAug's sampler (used by `scoreaug` and `nla+scoreaug`).
    pub scoreaug: OneOf,
    /// Condition the network on ω (false: the leakage control).
    pub condition: bool,
}

impl Augment {
    /// `mode` with ScoreAug's probability `p` over `kinds`, NLA as EDM's pipeline at
    /// `train.py`'s defaults. (ScoreAug alone keeps the blit set's 8 unused NLA slots,
    /// so that its network and runs are those it had before EDM's pipeline existed.)
    pub fn new(mode: Mode, p: f64, kinds: Vec<Kind>, condition: bool) -> Result<Self> {
        let nla = matches!(mode, Mode::Nla | Mode::NlaScoreAug);
        Ok(Self {
            mode,
            nla: Nla::default(),
            edm: nla.then(EdmPipe::default),
            scoreaug: OneOf::new(p, kinds)?,
            condition,
        })
    }

    /// The same with NLA's earlier set (flips, rot90, integer translation) in place of
    /// EDM's pipeline.
    pub fn with_blit_nla(self) -> Self {
        Self { edm: None, ..self }
    }

    /// How many numbers NLA's ω takes: EDM's labels, or the blit set's [`OMEGA_DIM`].
    pub fn nla_dim(&self) -> usize {
        self.edm.as_ref().map_or(OMEGA_DIM, EdmPipe::label_dim)
    }

    /// Length of the augmentation vector the network is conditioned on: NLA's ω, then
    /// ScoreAug's (17 with EDM's pipeline, 16 with the blit set).
    pub fn augment_dim(&self) -> usize {
        self.nla_dim() + OMEGA_DIM
    }

    fn uses_nla(&self) -> bool {
        matches!(self.mode, Mode::Nla | Mode::NlaScoreAug)
    }

    /// The transforms of one sample: (NLA's, ScoreAug's).
    pub fn sample(&self, rng: &mut StdRng, h: usize, w: usize) -> (Stage1, Params) {
        let t1 = match (&self.edm, self.uses_nla()) {
            (_, false) => Stage1::Blit(Params::default()),
            (Some(edm), true) => Stage1::Edm(edm.sample(rng)),
            (None, true) => Stage1::Blit(self.nla.sample(rng, h, w)),
        };
        let sa = matches!(self.mode, Mode::ScoreAug | Mode::NlaScoreAug);
        let t2 = if sa {
            self.scoreaug.sample(rng, h, w)
        } else {
            Params::default()
        };
        (t1, t2)
    }

    /// NLA's ω of one sample ([`Augment::nla_dim`] numbers).
    fn nla_omega(&self, t: &Stage1, h: usize, w: usize) -> Vec<f32> {
        match (&self.edm, t) {
            (Some(edm), Stage1::Edm(g)) => edm.labels(g),
            (Some(edm), Stage1::Blit(_)) => vec![0.0; edm.label_dim()],
            (None, Stage1::Blit(p)) => p.omega(h, w).to_vec(),
            (None, Stage1::Edm(_)) => vec![0.0; OMEGA_DIM],
        }
    }

    /// The clean images after NLA: EDM's pipeline on the batch, or the blit set image
    /// by image.
    fn clean(&self, x: &[f32], t1: &[Stage1], [c, h, w]: [usize; 3]) -> Result<Vec<f32>> {
        let per = c * h * w;
        match (&self.edm, self.uses_nla()) {
            (_, false) => Ok(x.to_vec()),
            (Some(edm), true) => {
                let g: Vec<Geometric> = t1.iter().map(Stage1::geometric).collect();
                let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                let out = edm.apply(&x64, &g, [c, h, w])?;
                Ok(out.into_iter().map(|v| v as f32).collect())
            }
            (None, true) => {
                let mut out = Vec::with_capacity(x.len());
                for (img, t) in x.chunks_exact(per).zip(t1) {
                    out.extend(t.blit().apply(img, c, h, w)?);
                }
                Ok(out)
            }
        }
    }

    /// Read back from a checkpoint's config (`objective`), if it records one.
    pub fn from_config(config: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(config.get("objective")?.get("augment")?.clone()).ok()
    }
}

/// NLA's transform of one sample: EDM's pipeline's or the blit set's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stage1 {
    /// EDM's geometric pipeline.
    Edm(Geometric),
    /// The blit set (flips, rot90, integer translation); the identity when NLA is off.
    Blit(Params),
}

impl Stage1 {
    fn geometric(&self) -> Geometric {
        match self {
            Stage1::Edm(g) => *g,
            Stage1::Blit(_) => Geometric::default(),
        }
    }

    fn blit(&self) -> Params {
        match self {
            Stage1::Blit(p) => *p,
            Stage1::Edm(_) => Params::default(),
        }
    }
}

/// How the measures write a transform's ω into a model's augmentation vector: in
/// NLA's slots for a model trained with NLA alone (as EDM's labels when its NLA was
/// EDM's pipeline), in ScoreAug's slots (after NLA's) otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct OmegaLayout {
    /// Length of the vector.
    pub dim: usize,
    /// Where the transform's ω starts.
    pub at: usize,
    /// EDM's pipeline, when the ω is written as its labels.
    pub edm: Option<EdmPipe>,
}

impl OmegaLayout {
    /// The layout of a model trained with `augment` (`None`: no augmentation, whose
    /// network takes no ω; the blit layout is kept for it).
    pub fn of(augment: Option<&Augment>) -> Self {
        match augment {
            None => Self {
                dim: 2 * OMEGA_DIM,
                at: OMEGA_DIM,
                edm: None,
            },
            Some(a) if a.mode == Mode::Nla => Self {
                dim: a.augment_dim(),
                at: 0,
                edm: a.edm.clone(),
            },
            Some(a) => Self {
                dim: a.augment_dim(),
                at: a.nla_dim(),
                edm: None,
            },
        }
    }

    /// The augmentation vector for transform `t` of an `h × w` image. In EDM's labels a
    /// flip is its flip, k quarter turns a rotation by kπ/2 and a shift (dx, dy) a
    /// translation of dx / (W · translate_frac_std) (one transform at a time, as the
    /// measures draw them); cutout and brightness have no EDM label and give zeros.
    pub fn omega(&self, t: &Params, h: usize, w: usize) -> Vec<f32> {
        let mut v = vec![0.0; self.dim];
        let labels = match &self.edm {
            None => t.omega(h, w).to_vec(),
            Some(edm) => edm.labels(&Geometric {
                xflip: t.flip_h,
                yflip: t.flip_v,
                rotate: t.rot as f64 * std::f64::consts::FRAC_PI_2,
                translate: [
                    t.shift.0 as f64 / (w as f64 * edm.translate_frac_std),
                    t.shift.1 as f64 / (h as f64 * edm.translate_frac_std),
                ],
                ..Geometric::default()
            }),
        };
        v[self.at..self.at + labels.len()].copy_from_slice(&labels);
        v
    }
}

/// Input and target of one sample from its clean (NLA-transformed) image.
fn one(
    clean: &[f32],
    noise: &[f32],
    sigma: f32,
    t2: &Params,
    [c, h, w]: [usize; 3],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let noisy: Vec<f32> = clean
        .iter()
        .zip(noise)
        .map(|(a, n)| a + sigma * n)
        .collect();
    let input = t2.apply(&noisy, c, h, w)?;
    let target = t2.apply(clean, c, h, w)?;
    Ok((input, target))
}

fn with_augment(cond: Option<Conditioning>, omega: Tensor<2>) -> Conditioning {
    let mut c = cond.unwrap_or_default();
    c.augment = Some(omega);
    c
}

impl Objective<4> for Augment {
    fn regression(
        &self,
        x0: Tensor<4>,
        sigma: &Tensor<1>,
        noise: Tensor<4>,
        cond: Option<Conditioning>,
        rng: &mut StdRng,
    ) -> score_core::Result<Regression<4>> {
        let device: Device = x0.device();
        let [b, c, h, w] = x0.dims();
        let (x, n) = (to_vec_f32(x0)?, to_vec_f32(noise)?);
        let s = to_vec_f32(sigma.clone())?;
        let (per, dim) = (c * h * w, self.augment_dim());
        let (t1, t2): (Vec<Stage1>, Vec<Params>) = (0..b).map(|_| self.sample(rng, h, w)).unzip();
        let clean = self.clean(&x, &t1, [c, h, w])?;
        let (mut input, mut target) = (Vec::with_capacity(b * per), Vec::with_capacity(b * per));
        let mut omegas = Vec::with_capacity(b * dim);
        for i in 0..b {
            let r = i * per..(i + 1) * per;
            let (y, tg) = one(&clean[r.clone()], &n[r], s[i], &t2[i], [c, h, w])?;
            input.extend(y);
            target.extend(tg);
            match self.condition {
                true => {
                    omegas.extend(self.nla_omega(&t1[i], h, w));
                    omegas.extend(t2[i].omega(h, w));
                }
                false => omegas.extend(std::iter::repeat_n(0.0, dim)),
            }
        }
        let omega = from_f32(omegas, [b, dim], &device);
        Ok(Regression {
            input: from_f32(input, [b, c, h, w], &device),
            target: from_f32(target, [b, c, h, w], &device),
            cond: Some(with_augment(cond, omega)),
            weight: None,
        })
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "name": "augment", "augment": self, "augment_dim": self.augment_dim() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use score_core::tensor::{randn, stream_rng};

    #[test]
    fn scoreaug_transforms_the_noisy_input_and_nla_the_clean_image() {
        let dev = Device::flex();
        let mut rng = stream_rng(0, 0, 0);
        let x0 = randn([6, 1, 4, 4], &mut rng, &dev);
        let noise = randn([6, 1, 4, 4], &mut rng, &dev);
        let sigma = score_core::tensor::tensor1(&[0.5; 6], &dev);
        let (xv, nv) = (
            to_vec_f32(x0.clone()).unwrap(),
            to_vec_f32(noise.clone()).unwrap(),
        );
        for mode in [Mode::ScoreAug, Mode::Nla, Mode::NlaScoreAug] {
            let aug = Augment::new(mode, 1.0, vec![Kind::Rot90], true).unwrap();
            let mut r1 = StdRng::seed_from_u64(9);
            let reg = aug
                .regression(x0.clone(), &sigma, noise.clone(), None, &mut r1)
                .unwrap();
            let (inp, tgt) = (
                to_vec_f32(reg.input).unwrap(),
                to_vec_f32(reg.target).unwrap(),
            );
            let om = to_vec_f32(reg.cond.unwrap().augment.unwrap()).unwrap();
            let mut r2 = StdRng::seed_from_u64(9);
            let (t1s, t2s): (Vec<Stage1>, Vec<Params>) =
                (0..6).map(|_| aug.sample(&mut r2, 4, 4)).unzip();
            let cleans = aug.clean(&xv, &t1s, [1, 4, 4]).unwrap();
            let (dim, slot) = (aug.augment_dim(), aug.nla_dim());
            assert_eq!(dim, if mode == Mode::ScoreAug { 16 } else { 17 });
            for i in 0..6 {
                let (t1, t2) = (t1s[i], t2s[i]);
                let r = i * 16..(i + 1) * 16;
                let clean = cleans[r.clone()].to_vec();
                let noisy: Vec<f32> = clean
                    .iter()
                    .zip(&nv[r.clone()])
                    .map(|(a, n)| a + 0.5 * n)
                    .collect();
                assert_eq!(
                    &tgt[r.clone()],
                    &t2.apply(&clean, 1, 4, 4).unwrap()[..],
                    "{mode:?}"
                );
                assert_eq!(
                    &inp[r.clone()],
                    &t2.apply(&noisy, 1, 4, 4).unwrap()[..],
                    "{mode:?}"
                );
                assert_eq!(&om[i * dim + slot..(i + 1) * dim], &t2.omega(4, 4)[..]);
                assert_eq!(&om[i * dim..i * dim + slot], &aug.nla_omega(&t1, 4, 4)[..]);
                match mode {
                    Mode::ScoreAug => {
                        assert!(t1 == Stage1::Blit(Params::default()) && !t2.is_identity())
                    }
                    _ => assert!(matches!(t1, Stage1::Edm(_))),
                }
            }
        }
        // The leakage control trains on the same pairs with ω = 0.
        let aug = Augment::new(Mode::ScoreAug, 1.0, vec![Kind::Rot90], false).unwrap();
        let reg = aug
            .regression(x0, &sigma, noise, None, &mut StdRng::seed_from_u64(9))
            .unwrap();
        let om = to_vec_f32(reg.cond.unwrap().augment.unwrap()).unwrap();
        assert!(om.iter().all(|v| *v == 0.0));
        let cfg = aug.describe();
        assert_eq!(
            Augment::from_config(&serde_json::json!({"objective": cfg}))
                .unwrap()
                .mode,
            Mode::ScoreAug
        );
    }

    #[test]
    fn runs_recorded_before_edms_pipeline_keep_the_blit_set_and_16_numbers() {
        // What `describe` wrote before the `edm` field existed.
        let mut v =
            serde_json::to_value(Augment::new(Mode::Nla, 0.5, vec![Kind::Flip], true).unwrap())
                .unwrap();
        v.as_object_mut().unwrap().remove("edm");
        let old = serde_json::json!({"objective": {"augment": v}});
        let aug = Augment::from_config(&old).unwrap();
        assert!(aug.edm.is_none());
        assert_eq!(
            (
                aug.nla_dim(),
                aug.augment_dim(),
                OmegaLayout::of(Some(&aug)).at
            ),
            (8, 16, 0)
        );
        let mut rng = StdRng::seed_from_u64(1);
        let (t1, _) = aug.sample(&mut rng, 8, 8);
        assert!(matches!(t1, Stage1::Blit(_)));
        let new = Augment::new(Mode::NlaScoreAug, 0.5, vec![Kind::Flip], true).unwrap();
        assert_eq!((new.augment_dim(), OmegaLayout::of(Some(&new)).at), (17, 9));
        assert_eq!(new.clone().with_blit_nla().augment_dim(), 16);
    }

    #[test]
    fn a_measured_rotation_or_flip_is_written_as_edms_labels_for_an_edm_nla_model() {
        let aug = Augment::new(Mode::Nla, 0.5, vec![Kind::Rot90], true).unwrap();
        let layout = OmegaLayout::of(Some(&aug));
        let quarter = Params {
            rot: 1,
            ..Params::default()
        };
        // numpy's rot90 samples the input at (−y, x): EDM's G⁻¹ = R(θ) with θ = π/2.
        let v = layout.omega(&quarter, 8, 8);
        assert_eq!(v.len(), 17);
        assert_eq!(&v[..9], &[0.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let shift = Params {
            shift: (2, -1),
            flip_h: true,
            ..Params::default()
        };
        let v = layout.omega(&shift, 8, 8);
        assert_eq!(&v[..9], &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, -1.0]);
        let sa = OmegaLayout::of(Some(
            &Augment::new(Mode::ScoreAug, 0.5, vec![Kind::Rot90], true).unwrap(),
        ));
        assert_eq!((sa.dim, sa.at), (16, 8));
        assert_eq!(&sa.omega(&quarter, 8, 8)[8..], &quarter.omega(8, 8)[..]);
    }
}
