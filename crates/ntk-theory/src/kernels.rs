//! Kernels of the two-layer ReLU network (`ntk-theory.md`, "The setup").
//!
//! With u = zᵀz'/(‖z‖‖z'‖) and θ = arccos u (computed as 2·atan2(‖â − b̂‖, ‖â + b̂‖)):
//! - [`Kernel::Ntk1`] (first layer trained): κ(z, z') = zᵀz'·(π − θ)/(2π);
//! - [`Kernel::Ntk2`] (both layers): κ₁ + ‖z‖‖z'‖·(sqrt(1 − u²) + u(π − θ))/(2π);
//! - [`Kernel::ArcCos0`]: (π − θ)/π; [`Kernel::ArcCos1`]: ‖z‖‖z'‖(sin θ + (π − θ)cos θ)/π
//!   (Cho & Saul 2009).

use std::f64::consts::PI;

use ndarray::{Array2, ArrayView1, ArrayView2};
use score_core::array::{contiguous, row_major, rows_of};

use crate::error::{Result, invalid};

/// A kernel on R^p.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// NTK with the first layer trained.
    Ntk1,
    /// NTK with both layers trained.
    Ntk2,
    /// Arc-cosine kernel of order 0.
    ArcCos0,
    /// Arc-cosine kernel of order 1.
    ArcCos1,
}

impl std::str::FromStr for Kernel {
    type Err = crate::NtkError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "ntk1" => Self::Ntk1,
            "ntk2" => Self::Ntk2,
            "arccos0" => Self::ArcCos0,
            "arccos1" => Self::ArcCos1,
            _ => {
                return Err(invalid(
                    "kernel",
                    format!("unknown kernel '{s}', expected ntk1, ntk2, arccos0 or arccos1"),
                ));
            }
        })
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Kernel {
    /// κ(z, z').
    pub fn eval(&self, z: ArrayView1<f64>, zp: ArrayView1<f64>) -> f64 {
        self.eval_slices(&contiguous(z), &contiguous(zp))
    }

    /// κ(z, z') of two points given as slices.
    pub(crate) fn eval_slices(&self, z: &[f64], zp: &[f64]) -> f64 {
        let (nz, nzp) = (dot(z, z).sqrt(), dot(zp, zp).sqrt());
        if nz == 0.0 || nzp == 0.0 {
            return if *self == Self::ArcCos0 { 0.5 } else { 0.0 };
        }
        let ip = dot(z, zp);
        // θ = 2·atan2(‖â − b̂‖, ‖â + b̂‖) is accurate near 0 and π, where arccos(u) loses
        // half the digits (its slope is infinite at u = ±1).
        let (mut dm, mut dp) = (0.0, 0.0);
        for (a, b) in z.iter().zip(zp) {
            let (x, y) = (a / nz, b / nzp);
            dm += (x - y) * (x - y);
            dp += (x + y) * (x + y);
        }
        let theta = 2.0 * dm.sqrt().atan2(dp.sqrt());
        let u = theta.cos();
        match self {
            Self::Ntk1 => ip * (PI - theta) / (2.0 * PI),
            Self::Ntk2 => {
                ip * (PI - theta) / (2.0 * PI)
                    + nz * nzp * ((1.0 - u * u).sqrt() + u * (PI - theta)) / (2.0 * PI)
            }
            Self::ArcCos0 => (PI - theta) / PI,
            Self::ArcCos1 => nz * nzp * (theta.sin() + (PI - theta) * u) / PI,
        }
    }

    /// The Gram matrix κ(a_i, b_j) of the rows of `a` (`[n, p]`) against those of `b`
    /// (`[n', p]`): n × n'.
    pub fn cross_gram(&self, a: ArrayView2<f64>, b: ArrayView2<f64>) -> Result<Array2<f64>> {
        let p = a.ncols();
        if p == 0 || b.ncols() != p {
            return Err(invalid(
                "points",
                format!("rows of dimension {p} and {} do not pair", b.ncols()),
            ));
        }
        let nb = b.nrows();
        Ok(rows_of(
            self.cross_gram_flat(&row_major(a), &row_major(b), p),
            nb,
        ))
    }

    /// [`Self::cross_gram`] of row-major points of dimension `p`, row-major out.
    pub(crate) fn cross_gram_flat(&self, a: &[f64], b: &[f64], p: usize) -> Vec<f64> {
        let (na, nb) = (a.len() / p, b.len() / p);
        let mut out = vec![0.0; na * nb];
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(na.max(1));
        let rows_per = na.div_ceil(threads.max(1)).max(1);
        std::thread::scope(|s| {
            for (ci, chunk) in out.chunks_mut(rows_per * nb).enumerate() {
                s.spawn(move || {
                    for (ri, row) in chunk.chunks_mut(nb).enumerate() {
                        let i = ci * rows_per + ri;
                        let zi = &a[i * p..(i + 1) * p];
                        for (j, v) in row.iter_mut().enumerate() {
                            *v = self.eval_slices(zi, &b[j * p..(j + 1) * p]);
                        }
                    }
                });
            }
        });
        out
    }

    /// The symmetric Gram matrix H_ij = κ(z_i, z_j) of the rows of `z`, n × n (the
    /// upper triangle mirrored onto the lower).
    pub fn gram(&self, z: ArrayView2<f64>) -> Result<Array2<f64>> {
        let mut h = self.cross_gram(z, z)?;
        let n = h.nrows();
        for i in 0..n {
            for j in 0..i {
                h[[i, j]] = h[[j, i]];
            }
        }
        Ok(h)
    }
}
