//! EDM's non-leaky augmentation as EDM runs it: the geometric part of `AugmentPipe`
//! (NVlabs/edm `training/augment.py`, after Karras et al. 2020's ADA) with `train.py`'s
//! default set: x-flip (`xflip=1e8`, i.e. a fair coin on every sample), y-flip,
//! isotropic scaling, arbitrary-angle rotation, anisotropic scaling and fractional
//! translation, each with probability `p` (EDM's `--augment`, default 0.12); rot90 and
//! integer translation off.
//!
//! The flips are pixel blits. The other four compose one inverse matrix G⁻¹ per sample,
//! executed as EDM does on the whole batch: reflect padding by the batch's largest
//! margin, 2× upsampling with the `sym6` wavelet low-pass filter (its coefficients
//! rounded to f32 as EDM's `np.float32` array), bilinear resampling with zero padding
//! (`grid_sample`, `align_corners=False`), the filter again with 2× decimation, and a
//! crop. Every image goes through that chain when any geometric transform is enabled,
//! transformed or not (as in EDM): the filter pair is orthogonal, so an untransformed
//! image comes back to rounding.
//!
//! A sample's augment labels are EDM's 9 numbers: x-flip, y-flip, the scale's normal w,
//! cos θ − 1 and sin θ of the rotation, w·cos r and w·sin r of the anisotropy, and the
//! translation's two normals. The identity is all zeros.
//!
//! Differences to EDM: the random numbers come from the run's seeded stream, one sample
//! after another, where EDM draws each kind for the whole batch with torch's generator
//! (the same distributions, other values); the arithmetic is f64 where EDM's is f32.
//! `tests/edm_augment.rs` replays EDM's own draws and compares the images and labels
//! with EDM's float64 output.

use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use std::f64::consts::PI;

use crate::error::{AugError, Result};

/// EDM's `sym6` low-pass filter (`wavelets['sym6']`).
const SYM6: [f64; 12] = [
    0.015404109327027373,
    0.0034907120842174702,
    -0.11799011114819057,
    -0.048311742585633,
    0.4910559419267466,
    0.787641141030194,
    0.3379294217276218,
    -0.07263752278646252,
    -0.021060292512300564,
    0.04472490177066578,
    0.0017677118642428036,
    -0.007800708325034148,
];

/// EDM's `Hz_pad`: a quarter of the filter's length.
const HZ_PAD: usize = SYM6.len() / 4;

/// The filter as EDM applies it: each coefficient rounded to f32.
fn hz() -> [f64; 12] {
    SYM6.map(|v| v as f32 as f64)
}

/// EDM's `AugmentPipe` settings: probability multipliers (0 turns a transform off and
/// drops its labels) and ranges, as `augment.py` names them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EdmPipe {
    /// The overall probability (EDM's `p`, `--augment`).
    pub p: f64,
    /// x-flip multiplier (`train.py`: 1e8, a fair coin on every sample).
    pub xflip: f64,
    /// y-flip multiplier.
    pub yflip: f64,
    /// Isotropic scaling multiplier.
    pub scale: f64,
    /// Arbitrary-angle rotation multiplier.
    pub rotate_frac: f64,
    /// Anisotropic scaling multiplier.
    pub aniso: f64,
    /// Fractional translation multiplier.
    pub translate_frac: f64,
    /// log2 standard deviation of the isotropic scale.
    pub scale_std: f64,
    /// Rotation range (1 = the full circle).
    pub rotate_frac_max: f64,
    /// log2 standard deviation of the anisotropic scale.
    pub aniso_std: f64,
    /// Probability that the anisotropy's axes are rotated.
    pub aniso_rotate_prob: f64,
    /// Standard deviation of the translation, as a fraction of the side.
    pub translate_frac_std: f64,
}

impl Default for EdmPipe {
    /// `train.py`'s default: `p = 0.12`, xflip=1e8, yflip, scale, rotate_frac, aniso and
    /// translate_frac at 1, `AugmentPipe`'s ranges.
    fn default() -> Self {
        Self {
            p: 0.12,
            xflip: 1e8,
            yflip: 1.0,
            scale: 1.0,
            rotate_frac: 1.0,
            aniso: 1.0,
            translate_frac: 1.0,
            scale_std: 0.2,
            rotate_frac_max: 1.0,
            aniso_std: 0.2,
            aniso_rotate_prob: 0.5,
            translate_frac_std: 0.125,
        }
    }
}

/// The random numbers of one sample's transform, in `augment.py`'s order: each kind's
/// value draw(s), then its uniform that decides whether it is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Draws {
    /// x-flip: a fair bit, and the uniform against `xflip · p`.
    pub xflip: (bool, f64),
    /// y-flip: a fair bit, and the uniform against `yflip · p`.
    pub yflip: (bool, f64),
    /// Scale: a standard normal w, and the uniform.
    pub scale: (f64, f64),
    /// Rotation: a uniform for the angle, and the uniform.
    pub rotate: (f64, f64),
    /// Anisotropy: a normal w, a uniform for the axes' angle, the uniform, and the
    /// uniform against `aniso_rotate_prob`.
    pub aniso: [f64; 4],
    /// Translation: two normals, and the uniform.
    pub translate: ([f64; 2], f64),
}

impl Draws {
    /// Draw one sample's numbers from `rng`.
    pub fn draw(rng: &mut StdRng) -> Self {
        let mut u = || rng.random::<f64>();
        let (xb, xu, yb, yu) = (u() < 0.5, u(), u() < 0.5, u());
        let (su, ra, ru) = (u(), u(), u());
        let (ar, au, ap, tu) = (u(), u(), u(), u());
        let mut n = || -> f64 { StandardNormal.sample(rng) };
        let (sw, aw, tx, ty) = (n(), n(), n(), n());
        Self {
            xflip: (xb, xu),
            yflip: (yb, yu),
            scale: (sw, su),
            rotate: (ra, ru),
            aniso: [aw, ar, au, ap],
            translate: ([tx, ty], tu),
        }
    }
}

/// One sample's transform in EDM's parameters. `Default` is the identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Geometric {
    /// Mirror left-right.
    pub xflip: bool,
    /// Mirror top-bottom.
    pub yflip: bool,
    /// The isotropic scale's normal w: the image grows by 2^(w · scale_std).
    pub scale: f64,
    /// The rotation angle θ (radians).
    pub rotate: f64,
    /// The anisotropy's normal w: 2^(w · aniso_std) along one axis, its inverse along
    /// the other.
    pub aniso: f64,
    /// The anisotropy's axes' angle r.
    pub aniso_angle: f64,
    /// The translation's two normals, in units of `translate_frac_std` × the side.
    pub translate: [f64; 2],
}

/// A 3 × 3 matrix, row-major.
type Mat = [[f64; 3]; 3];

fn mul(a: &Mat, b: &Mat) -> Mat {
    let mut c = [[0.0; 3]; 3];
    for (i, row) in c.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

fn translate(tx: f64, ty: f64) -> Mat {
    [[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]]
}

fn scale(sx: f64, sy: f64) -> Mat {
    [[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]]
}

fn rotate(t: f64) -> Mat {
    [
        [t.cos(), -t.sin(), 0.0],
        [t.sin(), t.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ]
}

impl EdmPipe {
    /// Check the settings: probabilities and multipliers non-negative and finite.
    pub fn validate(&self) -> Result<()> {
        let all = [
            ("p", self.p),
            ("xflip", self.xflip),
            ("yflip", self.yflip),
            ("scale", self.scale),
            ("rotate_frac", self.rotate_frac),
            ("aniso", self.aniso),
            ("translate_frac", self.translate_frac),
            ("scale_std", self.scale_std),
            ("rotate_frac_max", self.rotate_frac_max),
            ("aniso_std", self.aniso_std),
            ("aniso_rotate_prob", self.aniso_rotate_prob),
            ("translate_frac_std", self.translate_frac_std),
        ];
        match all.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            Some((name, v)) => Err(AugError::invalid(
                "nla",
                format!("{name} = {v}: must be non-negative and finite"),
            )),
            None if self.p > 1.0 => Err(AugError::invalid(
                "nla",
                format!("p = {}: a probability", self.p),
            )),
            None => Ok(()),
        }
    }

    /// How many labels a sample carries: 1 per enabled flip, scale and 2 per enabled
    /// rotation, anisotropy and translation (9 for EDM's default).
    pub fn label_dim(&self) -> usize {
        let on = |m: f64| (m > 0.0) as usize;
        on(self.xflip)
            + on(self.yflip)
            + on(self.scale)
            + 2 * (on(self.rotate_frac) + on(self.aniso) + on(self.translate_frac))
    }

    /// One sample's transform from its draws, as `augment.py` decides it.
    pub fn params(&self, d: &Draws) -> Geometric {
        let hit = |mult: f64, u: f64| mult > 0.0 && u < mult * self.p;
        let keep = |mult: f64, u: f64, v: f64| if hit(mult, u) { v } else { 0.0 };
        let angle = (d.rotate.0 * 2.0 - 1.0) * (PI * self.rotate_frac_max);
        let axes = (d.aniso[1] * 2.0 - 1.0) * PI;
        Geometric {
            xflip: hit(self.xflip, d.xflip.1) && d.xflip.0,
            yflip: hit(self.yflip, d.yflip.1) && d.yflip.0,
            scale: keep(self.scale, d.scale.1, d.scale.0),
            rotate: keep(self.rotate_frac, d.rotate.1, angle),
            aniso: keep(self.aniso, d.aniso[2], d.aniso[0]),
            aniso_angle: match d.aniso[3] < self.aniso_rotate_prob {
                true => axes,
                false => 0.0,
            },
            translate: match hit(self.translate_frac, d.translate.1) {
                true => d.translate.0,
                false => [0.0; 2],
            },
        }
    }

    /// One sample's transform drawn from `rng`.
    pub fn sample(&self, rng: &mut StdRng) -> Geometric {
        self.params(&Draws::draw(rng))
    }

    /// EDM's augment labels of `g` ([`EdmPipe::label_dim`] numbers).
    pub fn labels(&self, g: &Geometric) -> Vec<f32> {
        let mut l = Vec::with_capacity(self.label_dim());
        let (r, a) = (g.rotate, g.aniso_angle);
        let parts: [(f64, &[f64]); 6] = [
            (self.xflip, &[g.xflip as u8 as f64]),
            (self.yflip, &[g.yflip as u8 as f64]),
            (self.scale, &[g.scale]),
            (self.rotate_frac, &[r.cos() - 1.0, r.sin()]),
            (self.aniso, &[g.aniso * a.cos(), g.aniso * a.sin()]),
            (self.translate_frac, &g.translate),
        ];
        for (mult, v) in parts {
            if mult > 0.0 {
                l.extend(v.iter().map(|&x| x as f32));
            }
        }
        l
    }

    /// True when the geometric chain runs (any of scale, rotation, anisotropy or
    /// translation enabled), as EDM's `G_inv is not I_3`.
    fn geometric_on(&self) -> bool {
        [
            self.scale,
            self.rotate_frac,
            self.aniso,
            self.translate_frac,
        ]
        .iter()
        .any(|&m| m > 0.0)
    }

    /// G⁻¹ of one sample of an `h × w` image, composed in `augment.py`'s order.
    fn g_inv(&self, g: &Geometric, h: usize, w: usize) -> Mat {
        let mut m = translate(0.0, 0.0);
        if self.scale > 0.0 {
            let s = (g.scale * self.scale_std).exp2();
            m = mul(&m, &scale(1.0 / s, 1.0 / s));
        }
        if self.rotate_frac > 0.0 {
            m = mul(&m, &rotate(g.rotate));
        }
        if self.aniso > 0.0 {
            let s = (g.aniso * self.aniso_std).exp2();
            let r = g.aniso_angle;
            m = mul(&mul(&mul(&m, &rotate(-r)), &scale(1.0 / s, s)), &rotate(r));
        }
        if self.translate_frac > 0.0 {
            let tx = g.translate[0] * w as f64 * self.translate_frac_std;
            let ty = g.translate[1] * h as f64 * self.translate_frac_std;
            m = mul(&m, &translate(-tx, -ty));
        }
        m
    }

    /// Apply each sample's transform to a batch `[n, c, h, w]` (row-major).
    pub fn apply(&self, images: &[f64], params: &[Geometric], chw: [usize; 3]) -> Result<Vec<f64>> {
        let [c, h, w] = chw;
        if images.len() != params.len() * c * h * w || c * h * w == 0 {
            return Err(AugError::invalid(
                "image",
                format!(
                    "{} values for {} images of [{c}, {h}, {w}]",
                    images.len(),
                    params.len()
                ),
            ));
        }
        let mut x = images.to_vec();
        for (img, g) in x.chunks_exact_mut(c * h * w).zip(params) {
            for plane in img.chunks_exact_mut(h * w) {
                flip(plane, g.xflip, g.yflip, w);
            }
        }
        if !self.geometric_on() {
            return Ok(x);
        }
        let mats: Vec<Mat> = params.iter().map(|g| self.g_inv(g, h, w)).collect();
        let margin = batch_margin(&mats, h, w);
        let mut out = Vec::with_capacity(x.len());
        for (img, m) in x.chunks_exact(c * h * w).zip(&mats) {
            for plane in img.chunks_exact(h * w) {
                out.extend(resample(plane, m, margin, h, w));
            }
        }
        Ok(out)
    }
}

fn flip(plane: &mut [f64], x: bool, y: bool, w: usize) {
    if x {
        plane.chunks_exact_mut(w).for_each(|r| r.reverse());
    }
    if y {
        let rows = plane.len() / w;
        for r in 0..rows / 2 {
            let (a, b) = plane.split_at_mut((rows - 1 - r) * w);
            a[r * w..(r + 1) * w].swap_with_slice(&mut b[..w]);
        }
    }
}

/// EDM's padding `[mx0, my0, mx1, my1]`: the batch's largest extent of the transformed
/// corners plus the filter's support, clamped to what reflect padding allows.
fn batch_margin(mats: &[Mat], h: usize, w: usize) -> [usize; 4] {
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let corners = [(-cx, -cy), (cx, -cy), (cx, cy), (-cx, cy)];
    let mut m = [f64::NEG_INFINITY; 4];
    for g in mats {
        for (x, y) in corners {
            let px = g[0][0] * x + g[0][1] * y + g[0][2];
            let py = g[1][0] * x + g[1][1] * y + g[1][2];
            for (k, v) in [-px, -py, px, py].into_iter().enumerate() {
                m[k] = m[k].max(v);
            }
        }
    }
    let pad = 2.0 * HZ_PAD as f64;
    let add = [pad - cx, pad - cy, pad - cx, pad - cy];
    let hi = [w - 1, h - 1, w - 1, h - 1];
    std::array::from_fn(|k| (m[k] + add[k]).clamp(0.0, hi[k] as f64).ceil() as usize)
}

/// Reflect-pad a plane (no edge repeat, as torch's `reflect`).
fn reflect_pad(plane: &[f64], h: usize, w: usize, [x0, y0, x1, y1]: [usize; 4]) -> Vec<f64> {
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let i = if i < 0 { -i } else { i };
        (if i >= n { 2 * (n - 1) - i } else { i }) as usize
    };
    let (hp, wp) = (h + y0 + y1, w + x0 + x1);
    let mut out = Vec::with_capacity(hp * wp);
    for y in 0..hp {
        let sy = reflect(y as isize - y0 as isize, h);
        for x in 0..wp {
            out.push(plane[sy * w + reflect(x as isize - x0 as isize, w)]);
        }
    }
    out
}

/// EDM's 2× upsampling along one axis: zeros interleaved, then the reversed filter
/// with padding 6. `src` is `[rows, n]`; the result `[rows, 2n]`.
fn upsample_rows(src: &[f64], n: usize, hz: &[f64; 12]) -> Vec<f64> {
    let pad = hz.len().div_ceil(2);
    let mut out = Vec::with_capacity(src.len() * 2);
    for row in src.chunks_exact(n) {
        for j in 0..2 * n {
            let mut acc = 0.0;
            for (t, &f) in hz.iter().rev().enumerate() {
                let z = j as isize + t as isize - pad as isize;
                if z >= 0 && z % 2 == 0 && ((z / 2) as usize) < n {
                    acc += f * row[(z / 2) as usize];
                }
            }
            out.push(acc);
        }
    }
    out
}

/// EDM's 2× downsampling along one axis: the filter with padding 5 and stride 2, then
/// `Hz_pad` dropped at each end. `src` is `[rows, n]`; the result `[rows, n/2 − 6]`.
fn downsample_rows(src: &[f64], n: usize, hz: &[f64; 12]) -> Vec<f64> {
    let pad = (hz.len() - 1) / 2;
    let len = (n + 2 * pad - hz.len()) / 2 + 1;
    let mut out = Vec::with_capacity(src.len() / 2);
    for row in src.chunks_exact(n) {
        for j in HZ_PAD..len - HZ_PAD {
            let mut acc = 0.0;
            for (t, &f) in hz.iter().enumerate() {
                let z = (2 * j + t) as isize - pad as isize;
                if z >= 0 && (z as usize) < n {
                    acc += f * row[z as usize];
                }
            }
            out.push(acc);
        }
    }
    out
}

/// `[rows, cols]` → `[cols, rows]`.
fn transpose(src: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

/// Bilinear sampling with zero padding (`grid_sample`, `align_corners=False`) of a
/// `[hi, wi]` plane at output `[ho, wo]` through the normalised affine map `theta`.
fn grid_sample(src: &[f64], [hi, wi]: [usize; 2], theta: &Mat, [ho, wo]: [usize; 2]) -> Vec<f64> {
    let at = |y: isize, x: isize| -> f64 {
        match y >= 0 && x >= 0 && (y as usize) < hi && (x as usize) < wi {
            true => src[y as usize * wi + x as usize],
            false => 0.0,
        }
    };
    let mut out = Vec::with_capacity(ho * wo);
    for i in 0..ho {
        let yn = (2 * i + 1) as f64 / ho as f64 - 1.0;
        for j in 0..wo {
            let xn = (2 * j + 1) as f64 / wo as f64 - 1.0;
            let gx = theta[0][0] * xn + theta[0][1] * yn + theta[0][2];
            let gy = theta[1][0] * xn + theta[1][1] * yn + theta[1][2];
            let ix = ((gx + 1.0) * wi as f64 - 1.0) / 2.0;
            let iy = ((gy + 1.0) * hi as f64 - 1.0) / 2.0;
            let (x0, y0) = (ix.floor(), iy.floor());
            let (fx, fy) = (ix - x0, iy - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            out.push(
                at(y0, x0) * (1.0 - fx) * (1.0 - fy)
                    + at(y0, x0 + 1) * fx * (1.0 - fy)
                    + at(y0 + 1, x0) * (1.0 - fx) * fy
                    + at(y0 + 1, x0 + 1) * fx * fy,
            );
        }
    }
    out
}

/// One plane through EDM's chain: pad, upsample, resample through G⁻¹, downsample.
fn resample(plane: &[f64], g: &Mat, margin: [usize; 4], h: usize, w: usize) -> Vec<f64> {
    let hz = hz();
    let [x0, y0, x1, y1] = margin;
    let (hp, wp) = (h + y0 + y1, w + x0 + x1);
    let padded = reflect_pad(plane, h, w, margin);
    let shift = translate((x0 as f64 - x1 as f64) / 2.0, (y0 as f64 - y1 as f64) / 2.0);
    let mut g = mul(&shift, g);
    // Upsample along x, then along y (through a transpose).
    let up_x = upsample_rows(&padded, wp, &hz);
    let up = transpose(
        &upsample_rows(&transpose(&up_x, hp, 2 * wp), hp, &hz),
        2 * wp,
        2 * hp,
    );
    g = mul(&mul(&scale(2.0, 2.0), &g), &scale(0.5, 0.5));
    g = mul(&mul(&translate(-0.5, -0.5), &g), &translate(0.5, 0.5));
    let (ho, wo) = ((h + 2 * HZ_PAD) * 2, (w + 2 * HZ_PAD) * 2);
    let (hu, wu) = (2 * hp, 2 * wp);
    let theta = mul(
        &mul(&scale(2.0 / wu as f64, 2.0 / hu as f64), &g),
        &scale(wo as f64 / 2.0, ho as f64 / 2.0),
    );
    let sampled = grid_sample(&up, [hu, wu], &theta, [ho, wo]);
    // Downsample along x, then along y.
    let down_x = downsample_rows(&sampled, wo, &hz);
    let down_y = downsample_rows(&transpose(&down_x, ho, w), ho, &hz);
    transpose(&down_y, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_identity_comes_back_to_rounding_and_flips_are_exact() {
        let pipe = EdmPipe::default();
        let (h, w) = (9, 7);
        let img: Vec<f64> = (0..h * w).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
        let out = pipe
            .apply(&img, &[Geometric::default()], [1, h, w])
            .unwrap();
        let err = img
            .iter()
            .zip(&out)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        // The sym6 pair is orthogonal only to f32 rounding of its coefficients.
        assert!(err < 1e-5, "identity error {err}");
        let off = EdmPipe {
            scale: 0.0,
            rotate_frac: 0.0,
            aniso: 0.0,
            translate_frac: 0.0,
            ..EdmPipe::default()
        };
        let g = Geometric {
            xflip: true,
            yflip: true,
            ..Geometric::default()
        };
        let out = off.apply(&img, &[g], [1, h, w]).unwrap();
        let rotated: Vec<f64> = img.iter().rev().copied().collect();
        assert_eq!(out, rotated);
        assert_eq!(off.label_dim(), 2);
    }

    #[test]
    fn labels_are_edms_nine_and_zero_for_the_identity() {
        let pipe = EdmPipe::default();
        assert_eq!(pipe.label_dim(), 9);
        assert_eq!(pipe.labels(&Geometric::default()), vec![0.0; 9]);
        let mut rng = StdRng::seed_from_u64(3);
        let g = (0..200)
            .map(|_| pipe.sample(&mut rng))
            .find(|g| g.rotate != 0.0)
            .unwrap();
        let l = pipe.labels(&g);
        assert_eq!(l.len(), 9);
        assert!(((l[3] as f64 + 1.0).hypot(l[4] as f64) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn x_flips_are_a_fair_coin_and_the_rest_follow_p() {
        let pipe = EdmPipe::default();
        let mut rng = StdRng::seed_from_u64(0);
        let n = 20_000;
        let gs: Vec<Geometric> = (0..n).map(|_| pipe.sample(&mut rng)).collect();
        let frac =
            |f: &dyn Fn(&Geometric) -> bool| gs.iter().filter(|g| f(g)).count() as f64 / n as f64;
        // Binomial standard errors: 0.0035 at 1/2, 0.0016 at 0.06, 0.0023 at 0.12;
        // each bound is five of them.
        assert!((frac(&|g| g.xflip) - 0.5).abs() < 0.018);
        assert!((frac(&|g| g.yflip) - 0.06).abs() < 0.008);
        assert!((frac(&|g| g.scale != 0.0) - 0.12).abs() < 0.012);
        assert!((frac(&|g| g.rotate != 0.0) - 0.12).abs() < 0.012);
        assert!((frac(&|g| g.translate != [0.0; 2]) - 0.12).abs() < 0.012);
    }

    #[test]
    fn settings_outside_their_range_are_refused_by_name() {
        let bad = EdmPipe {
            aniso_std: f64::NAN,
            ..EdmPipe::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("aniso_std")
        );
        let p = EdmPipe {
            p: 1.5,
            ..EdmPipe::default()
        };
        assert!(p.validate().is_err());
        assert!(EdmPipe::default().validate().is_ok());
    }
}
