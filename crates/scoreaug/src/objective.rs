//! ScoreAug, EDM's non-leaky augmentation and their combination as
//! `score_train::train::Objective`s: the one training loop of score-core trains them.
//!
//! Per sample, with x₀ the clean image, σ its noise level and n its noise:
//! - NLA (Karras et al. 2022): x' = T₁(x₀), input x' + σn, target x'.
//! - ScoreAug (Hou et al. 2025): input T₂(x' + σn), target T₂(x') (x' = x₀ without NLA).
//!
//! The network sees ω = [ω(T₁), ω(T₂)] (16 numbers, [`AUGMENT_DIM`]) through the UNet's
//! zero-initialised `map_augment`, unless conditioning is switched off (the leakage
//! control: ω = 0 always). Sampling passes no ω, which is ω = 0, the identity.

use burn::tensor::{Device, Tensor};
use rand::rngs::StdRng;
use score_core::Conditioning;
use score_core::tensor::{from_f32, to_vec_f32};
use score_train::train::{Objective, Regression};

use crate::error::{AugError, Result};
use crate::transforms::{Kind, Nla, OMEGA_DIM, OneOf, Params};

/// Length of the augmentation vector the network is conditioned on: NLA's ω, then
/// ScoreAug's.
pub const AUGMENT_DIM: usize = 2 * OMEGA_DIM;

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
    /// NLA's sampler (used by `nla` and `nla+scoreaug`).
    pub nla: Nla,
    /// ScoreAug's sampler (used by `scoreaug` and `nla+scoreaug`).
    pub scoreaug: OneOf,
    /// Condition the network on ω (false: the leakage control).
    pub condition: bool,
}

impl Augment {
    /// `mode` with ScoreAug's probability `p` over `kinds`, NLA at EDM's defaults.
    pub fn new(mode: Mode, p: f64, kinds: Vec<Kind>, condition: bool) -> Result<Self> {
        Ok(Self {
            mode,
            nla: Nla::default(),
            scoreaug: OneOf::new(p, kinds)?,
            condition,
        })
    }

    /// The transforms of one sample: (NLA's, ScoreAug's).
    pub fn sample(&self, rng: &mut StdRng, h: usize, w: usize) -> (Params, Params) {
        let nla = matches!(self.mode, Mode::Nla | Mode::NlaScoreAug);
        let sa = matches!(self.mode, Mode::ScoreAug | Mode::NlaScoreAug);
        let t1 = if nla {
            self.nla.sample(rng, h, w)
        } else {
            Params::default()
        };
        let t2 = if sa {
            self.scoreaug.sample(rng, h, w)
        } else {
            Params::default()
        };
        (t1, t2)
    }

    /// Read back from a checkpoint's config (`objective`), if it records one.
    pub fn from_config(config: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(config.get("objective")?.get("augment")?.clone()).ok()
    }
}

/// Where the ω a model conditions on lives in its augmentation vector: slots 0–7 for a
/// model trained with NLA alone, 8–15 (ScoreAug's) otherwise. The measures put a
/// transform's ω there.
pub fn omega_slot(augment: Option<&Augment>) -> usize {
    match augment.map(|a| a.mode) {
        Some(Mode::Nla) => 0,
        _ => OMEGA_DIM,
    }
}

/// Input, target and ω of one sample.
fn one(
    x0: &[f32],
    noise: &[f32],
    sigma: f32,
    t: (Params, Params),
    [c, h, w]: [usize; 3],
) -> Result<(Vec<f32>, Vec<f32>, [f32; AUGMENT_DIM])> {
    let clean = t.0.apply(x0, c, h, w)?;
    let noisy: Vec<f32> = clean
        .iter()
        .zip(noise)
        .map(|(a, n)| a + sigma * n)
        .collect();
    let input = t.1.apply(&noisy, c, h, w)?;
    let target = t.1.apply(&clean, c, h, w)?;
    let mut omega = [0f32; AUGMENT_DIM];
    omega[..OMEGA_DIM].copy_from_slice(&t.0.omega(h, w));
    omega[OMEGA_DIM..].copy_from_slice(&t.1.omega(h, w));
    Ok((input, target, omega))
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
        let per = c * h * w;
        let (mut input, mut target) = (Vec::with_capacity(b * per), Vec::with_capacity(b * per));
        let mut omegas = Vec::with_capacity(b * AUGMENT_DIM);
        for i in 0..b {
            let t = self.sample(rng, h, w);
            let r = i * per..(i + 1) * per;
            let (y, tg, om) = one(&x[r.clone()], &n[r], s[i], t, [c, h, w])?;
            input.extend(y);
            target.extend(tg);
            omegas.extend(if self.condition {
                om
            } else {
                [0.0; AUGMENT_DIM]
            });
        }
        let omega = from_f32(omegas, [b, AUGMENT_DIM], &device);
        Ok(Regression {
            input: from_f32(input, [b, c, h, w], &device),
            target: from_f32(target, [b, c, h, w], &device),
            cond: Some(with_augment(cond, omega)),
        })
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "name": "augment", "augment": self, "augment_dim": AUGMENT_DIM })
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
            for i in 0..6 {
                let (t1, t2) = aug.sample(&mut r2, 4, 4);
                let r = i * 16..(i + 1) * 16;
                let clean = t1.apply(&xv[r.clone()], 1, 4, 4).unwrap();
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
                assert_eq!(&om[i * 16 + 8..i * 16 + 16], &t2.omega(4, 4)[..]);
                if mode == Mode::ScoreAug {
                    assert!(t1.is_identity() && !t2.is_identity());
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
}
