//! Transforms of image batches `[B, C, H, W]` and their parameter vectors ω.
//!
//! One [`Params`] describes the transform of one sample; it is applied in a fixed order
//! (flips → rot90 → translation → brightness → cutout) and encoded in 8 numbers:
//!
//! | slot | meaning | identity |
//! |---|---|---|
//! | 0 | horizontal flip (0 or 1) | 0 |
//! | 1 | vertical flip (0 or 1) | 0 |
//! | 2, 3 | rot90 by k quarter turns: cos(kπ/2) − 1, sin(kπ/2) | 0, 0 |
//! | 4, 5 | integer translation (dx / W, dy / H), zero padding | 0, 0 |
//! | 6 | cutout side / image side (the place is not encoded) | 0 |
//! | 7 | brightness: ln s (pixels multiplied by s) | 0 |
//!
//! The identity is ω = 0. Flips, rotations and brightness are invertible
//! ([`Params::apply_inverse`]); translation and cutout lose pixels and are not.

use rand::RngExt;
use rand::rngs::StdRng;

use crate::error::{AugError, Result};

/// Length of one transform's ω.
pub const OMEGA_DIM: usize = 8;

/// The transform kinds, as `--aug-transforms` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// rot90 by k ∈ {1, 2, 3} quarter turns (square images).
    Rot90,
    /// A horizontal or vertical flip.
    Flip,
    /// Integer translation with zero padding.
    Translate,
    /// A zeroed square.
    Cutout,
    /// Pixels multiplied by s.
    Brightness,
}

impl Kind {
    /// Every kind, in ω order.
    pub const ALL: [Kind; 5] = [
        Kind::Flip,
        Kind::Rot90,
        Kind::Translate,
        Kind::Cutout,
        Kind::Brightness,
    ];

    /// Parse a comma-separated list such as `rot90,flip`.
    pub fn parse_list(s: &str) -> Result<Vec<Kind>> {
        s.split(',')
            .map(|t| match t.trim() {
                "rot90" => Ok(Kind::Rot90),
                "flip" => Ok(Kind::Flip),
                "translate" => Ok(Kind::Translate),
                "cutout" => Ok(Kind::Cutout),
                "brightness" => Ok(Kind::Brightness),
                other => Err(AugError::invalid(
                    "transforms",
                    format!("'{other}': expected rot90, flip, translate, cutout or brightness"),
                )),
            })
            .collect()
    }

    /// Orthogonal transforms keep N(0, σ²I) noise N(0, σ²I): nothing in the noisy
    /// input reveals them (the spec's leakage argument).
    pub fn is_orthogonal(self) -> bool {
        matches!(self, Kind::Rot90 | Kind::Flip)
    }
}

/// The transform of one sample. `Default` is the identity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Horizontal flip (x → W − 1 − x).
    pub flip_h: bool,
    /// Vertical flip.
    pub flip_v: bool,
    /// Quarter turns counter-clockwise (numpy's `rot90`), 0–3.
    pub rot: u8,
    /// Translation in pixels (+x right, +y down).
    pub shift: (i32, i32),
    /// Cutout: side, top row, left column.
    pub cutout: Option<(usize, usize, usize)>,
    /// Brightness factor s > 0.
    pub brightness: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            flip_h: false,
            flip_v: false,
            rot: 0,
            shift: (0, 0),
            cutout: None,
            brightness: 1.0,
        }
    }
}

/// A pixel type the transforms work on (f32 for training, f64 for the exact theory).
pub trait Pixel: Copy + PartialEq + std::ops::MulAssign + std::fmt::Debug {
    /// Zero.
    const ZERO: Self;
    /// From f64.
    fn of(v: f64) -> Self;
}

impl Pixel for f32 {
    const ZERO: Self = 0.0;
    fn of(v: f64) -> Self {
        v as f32
    }
}

impl Pixel for f64 {
    const ZERO: Self = 0.0;
    fn of(v: f64) -> Self {
        v
    }
}

fn rot90_plane<T: Pixel>(src: &[T], dst: &mut [T], n: usize) {
    // numpy.rot90 (counter-clockwise): out[i][j] = in[j][n − 1 − i].
    for i in 0..n {
        for j in 0..n {
            dst[i * n + j] = src[j * n + (n - 1 - i)];
        }
    }
}

impl Params {
    /// True for the identity.
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }

    /// True when [`Params::apply_inverse`] exists.
    pub fn is_invertible(&self) -> bool {
        self.shift == (0, 0) && self.cutout.is_none()
    }

    /// ω (see the module table); `h`, `w` are the image size.
    pub fn omega(&self, h: usize, w: usize) -> [f32; OMEGA_DIM] {
        let angle = self.rot as f64 * std::f64::consts::FRAC_PI_2;
        let side = h.min(w).max(1) as f64;
        [
            self.flip_h as u8 as f32,
            self.flip_v as u8 as f32,
            (angle.cos().round() - 1.0) as f32,
            angle.sin().round() as f32,
            (self.shift.0 as f64 / w.max(1) as f64) as f32,
            (self.shift.1 as f64 / h.max(1) as f64) as f32,
            self.cutout.map_or(0.0, |(s, _, _)| s as f64 / side) as f32,
            self.brightness.ln() as f32,
        ]
    }

    /// The invertible part of a transform from its ω (flips, rotation, brightness);
    /// ω with a translation or cutout is an error (those are not invertible).
    pub fn from_omega(omega: &[f32]) -> Result<Self> {
        if omega.len() != OMEGA_DIM {
            return Err(AugError::invalid(
                "omega",
                format!("{} values, expected {OMEGA_DIM}", omega.len()),
            ));
        }
        if omega[4] != 0.0 || omega[5] != 0.0 || omega[6] != 0.0 {
            return Err(AugError::invalid(
                "omega",
                "translation and cutout are not invertible",
            ));
        }
        let (c, s) = (omega[2] + 1.0, omega[3]);
        let rot = match (c.round() as i32, s.round() as i32) {
            (1, 0) => 0,
            (0, 1) => 1,
            (-1, 0) => 2,
            (0, -1) => 3,
            _ => return Err(AugError::invalid("omega", format!("rotation ({c}, {s})"))),
        };
        Ok(Self {
            flip_h: omega[0] > 0.5,
            flip_v: omega[1] > 0.5,
            rot,
            brightness: (omega[7] as f64).exp(),
            ..Self::default()
        })
    }

    fn check(&self, c: usize, h: usize, w: usize, len: usize) -> Result<()> {
        if len != c * h * w {
            return Err(AugError::invalid(
                "image",
                format!("{len} values for [{c}, {h}, {w}]"),
            ));
        }
        if self.rot % 2 == 1 && h != w {
            return Err(AugError::invalid(
                "rot90",
                format!("odd quarter turns need square images, got {h}×{w}"),
            ));
        }
        Ok(())
    }

    /// Apply to one image `[c, h, w]` (row-major), returning the transformed image.
    pub fn apply<T: Pixel>(&self, img: &[T], c: usize, h: usize, w: usize) -> Result<Vec<T>> {
        self.check(c, h, w, img.len())?;
        let mut x = img.to_vec();
        let mut tmp = vec![T::ZERO; h * w];
        for p in x.chunks_exact_mut(h * w) {
            if self.flip_h {
                p.chunks_exact_mut(w).for_each(|r| r.reverse());
            }
            if self.flip_v {
                tmp.copy_from_slice(p);
                for y in 0..h {
                    p[y * w..(y + 1) * w].copy_from_slice(&tmp[(h - 1 - y) * w..(h - y) * w]);
                }
            }
            for _ in 0..self.rot % 4 {
                tmp.copy_from_slice(p);
                rot90_plane(&tmp, p, h);
            }
            if self.shift != (0, 0) {
                tmp.copy_from_slice(p);
                let (dx, dy) = self.shift;
                for y in 0..h as i32 {
                    for xx in 0..w as i32 {
                        let (sy, sx) = (y - dy, xx - dx);
                        let inside = sy >= 0 && sy < h as i32 && sx >= 0 && sx < w as i32;
                        p[(y * w as i32 + xx) as usize] = if inside {
                            tmp[(sy * w as i32 + sx) as usize]
                        } else {
                            T::ZERO
                        };
                    }
                }
            }
            if self.brightness != 1.0 {
                let s = T::of(self.brightness);
                p.iter_mut().for_each(|v| *v *= s);
            }
            if let Some((side, top, left)) = self.cutout {
                for y in top..(top + side).min(h) {
                    for xx in left..(left + side).min(w) {
                        p[y * w + xx] = T::ZERO;
                    }
                }
            }
        }
        Ok(x)
    }

    /// The inverse transform applied to one image: T⁻¹ = flips ∘ rot⁻¹ ∘ (1/s).
    pub fn apply_inverse<T: Pixel>(
        &self,
        img: &[T],
        c: usize,
        h: usize,
        w: usize,
    ) -> Result<Vec<T>> {
        if !self.is_invertible() {
            return Err(AugError::invalid(
                "inverse",
                "translation and cutout are not invertible",
            ));
        }
        let unscale = Params {
            brightness: 1.0 / self.brightness,
            rot: (4 - self.rot % 4) % 4,
            ..Params::default()
        };
        let flips = Params {
            flip_h: self.flip_h,
            flip_v: self.flip_v,
            ..Params::default()
        };
        flips.apply(&unscale.apply(img, c, h, w)?, c, h, w)
    }
}

/// Ranges of the random transforms (the paper does not publish them; the defaults are
/// the spec's).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ranges {
    /// Largest translation as a fraction of the side (1/8).
    pub translate: f64,
    /// Cutout side as a fraction of the side (1/4).
    pub cutout: f64,
    /// Brightness s ∈ [1/b, b] (b = 1.2), log-uniform.
    pub brightness: f64,
}

impl Default for Ranges {
    fn default() -> Self {
        Self {
            translate: 0.125,
            cutout: 0.25,
            brightness: 1.2,
        }
    }
}

/// ScoreAug's sampler: with probability `p` one transform of a kind drawn from `kinds`
/// (by `weights`, equal by default), else the identity.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OneOf {
    /// Probability of a non-identity transform.
    pub p: f64,
    /// The kinds to choose from.
    pub kinds: Vec<Kind>,
    /// Their relative weights (same length as `kinds`).
    pub weights: Vec<f64>,
    /// Parameter ranges.
    pub ranges: Ranges,
}

impl OneOf {
    /// Equal weights over `kinds`, probability `p`.
    pub fn new(p: f64, kinds: Vec<Kind>) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(AugError::invalid("p", format!("{p} is not in [0, 1]")));
        }
        if kinds.is_empty() {
            return Err(AugError::invalid("transforms", "the list is empty"));
        }
        let weights = vec![1.0; kinds.len()];
        Ok(Self {
            p,
            kinds,
            weights,
            ranges: Ranges::default(),
        })
    }

    /// One sample's transform for an `h` × `w` image.
    pub fn sample(&self, rng: &mut StdRng, h: usize, w: usize) -> Params {
        if rng.random::<f64>() >= self.p {
            return Params::default();
        }
        let total: f64 = self.weights.iter().sum();
        let mut u = rng.random::<f64>() * total;
        let mut kind = self.kinds[self.kinds.len() - 1];
        for (k, wt) in self.kinds.iter().zip(&self.weights) {
            if u < *wt {
                kind = *k;
                break;
            }
            u -= wt;
        }
        draw(kind, &self.ranges, rng, h, w)
    }
}

/// A random transform of one kind (never the identity, except for sizes too small to
/// translate or cut out).
pub fn draw(kind: Kind, r: &Ranges, rng: &mut StdRng, h: usize, w: usize) -> Params {
    let mut p = Params::default();
    match kind {
        Kind::Rot90 => p.rot = rng.random_range(1..4u8),
        Kind::Flip => {
            if rng.random::<bool>() {
                p.flip_h = true
            } else {
                p.flip_v = true
            }
        }
        Kind::Translate => {
            let m = ((h.min(w) as f64 * r.translate).floor() as i32).max(1);
            while p.shift == (0, 0) {
                p.shift = (rng.random_range(-m..=m), rng.random_range(-m..=m));
            }
        }
        Kind::Cutout => {
            let side = ((h.min(w) as f64 * r.cutout).round() as usize).clamp(1, h.min(w));
            p.cutout = Some((
                side,
                rng.random_range(0..=h - side),
                rng.random_range(0..=w - side),
            ));
        }
        Kind::Brightness => {
            let b = r.brightness.ln();
            p.brightness = rng.random_range(-b..=b).exp();
        }
    }
    p
}

/// EDM's non-leaky augmentation, geometric subset for grayscale images: each of
/// x-flip, y-flip, rot90 and integer translation applied independently with
/// probability `p` (EDM's default 0.12); with `xflip_always` (EDM's `xflip=1e8`) the
/// x-flip is drawn with probability 1/2 on every sample instead.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Nla {
    /// Probability of each transform.
    pub p: f64,
    /// EDM's xflip multiplier of 1e8: x-flip with probability 1/2 regardless of p.
    pub xflip_always: bool,
    /// Largest translation as a fraction of the side (EDM's translate_int_max 0.125).
    pub translate: f64,
}

impl Default for Nla {
    fn default() -> Self {
        Self {
            p: 0.12,
            xflip_always: true,
            translate: 0.125,
        }
    }
}

impl Nla {
    /// One sample's composite transform.
    pub fn sample(&self, rng: &mut StdRng, h: usize, w: usize) -> Params {
        let mut t = Params::default();
        let hit = |rng: &mut StdRng| rng.random::<f64>() < self.p;
        t.flip_h = if self.xflip_always {
            rng.random::<bool>()
        } else {
            hit(rng) && rng.random::<bool>()
        };
        t.flip_v = hit(rng) && rng.random::<bool>();
        if hit(rng) && h == w {
            t.rot = rng.random_range(0..4u8);
        }
        if hit(rng) {
            let m = (h.min(w) as f64 * self.translate).round() as i32;
            t.shift = (rng.random_range(-m..=m), rng.random_range(-m..=m));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn img(c: usize, h: usize, w: usize) -> Vec<f32> {
        (0..c * h * w).map(|i| i as f32 + 1.0).collect()
    }

    #[test]
    fn rot90_and_flips_follow_numpy_and_invert_exactly() {
        // numpy.rot90([[1, 2], [3, 4]]) = [[2, 4], [1, 3]].
        let r = Params {
            rot: 1,
            ..Params::default()
        };
        assert_eq!(
            r.apply(&[1., 2., 3., 4.], 1, 2, 2).unwrap(),
            [2., 4., 1., 3.]
        );
        let f = Params {
            flip_h: true,
            ..Params::default()
        };
        assert_eq!(
            f.apply(&[1., 2., 3., 4.], 1, 2, 2).unwrap(),
            [2., 1., 4., 3.]
        );
        let v = Params {
            flip_v: true,
            ..Params::default()
        };
        assert_eq!(
            v.apply(&[1., 2., 3., 4.], 1, 2, 2).unwrap(),
            [3., 4., 1., 2.]
        );
        let x = img(2, 5, 5);
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..50 {
            let mut t = draw(Kind::Rot90, &Ranges::default(), &mut rng, 5, 5);
            t.flip_h = rng.random();
            t.flip_v = rng.random();
            t.brightness = rng.random_range(0.8..1.25);
            let y = t.apply(&x, 2, 5, 5).unwrap();
            let back = t.apply_inverse(&y, 2, 5, 5).unwrap();
            for (a, b) in back.iter().zip(&x) {
                // Brightness s then 1/s: two roundings of ≤ 2⁻²⁴ relative each.
                assert!((a - b).abs() <= 2.0 * f32::EPSILON * b.abs(), "{t:?}");
            }
            assert_eq!(Params::from_omega(&t.omega(5, 5)).unwrap().rot, t.rot);
        }
    }

    #[test]
    fn identity_is_omega_zero_and_lossy_transforms_have_no_inverse() {
        assert_eq!(Params::default().omega(28, 28), [0.0; OMEGA_DIM]);
        let x = img(1, 4, 4);
        assert_eq!(Params::default().apply(&x, 1, 4, 4).unwrap(), x);
        let t = Params {
            shift: (1, 0),
            ..Params::default()
        };
        let y = t.apply(&x, 1, 4, 4).unwrap();
        assert_eq!(&y[..4], &[0.0, 1.0, 2.0, 3.0]);
        assert!(t.apply_inverse(&y, 1, 4, 4).is_err());
        let cut = Params {
            cutout: Some((2, 1, 1)),
            ..Params::default()
        };
        let y = cut.apply(&x, 1, 4, 4).unwrap();
        assert_eq!(y.iter().filter(|v| **v == 0.0).count(), 4);
        assert!((cut.omega(4, 4)[6] - 0.5).abs() < 1e-7);
        assert!(
            Params {
                rot: 1,
                ..Params::default()
            }
            .apply(&img(1, 2, 3), 1, 2, 3)
            .is_err()
        );
        assert!(Kind::parse_list("rot90,zoom").is_err());
    }

    #[test]
    fn the_sampler_respects_p() {
        let s = OneOf::new(0.25, Kind::ALL.to_vec()).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let n = 4000;
        let hits = (0..n)
            .filter(|_| !s.sample(&mut rng, 8, 8).is_identity())
            .count();
        // Binomial(4000, 0.25): sd 27; 5 sd is 137.
        assert!((hits as f64 - 1000.0).abs() < 137.0, "{hits}");
        assert!(OneOf::new(1.5, vec![Kind::Flip]).is_err());
    }
}
