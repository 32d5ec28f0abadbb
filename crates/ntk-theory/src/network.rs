//! The finite-width network of the paper: f_W(z) = m^{−1/2} Σ_r a_r ReLU(w_rᵀz), with
//! output weights a_r ∈ {±1}^d fixed, first-layer weights w_r ~ N(0, I) trained, and a
//! symmetric initialisation (neurons in pairs (w, a), (w, −a)) so that f₀ ≡ 0.

use ndarray::{Array2, ArrayView1, ArrayView2};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use score_core::array::{contiguous, row_major, rows_of};

use crate::error::{Result, invalid};

/// The two-layer ReLU network with m neurons on inputs in R^p and outputs in R^d.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoLayerRelu {
    /// First-layer weights, m × p (row r is w_r).
    pub w: Array2<f64>,
    /// Output signs, m × d (row r is a_r).
    pub a: Array2<f64>,
}

impl TwoLayerRelu {
    /// Symmetric initialisation: m/2 draws w ~ N(0, I) and random signs a, each neuron
    /// paired with (w, −a). `m` must be even.
    pub fn symmetric(m: usize, p: usize, d: usize, seed: u64) -> Result<Self> {
        if m == 0 || !m.is_multiple_of(2) {
            return Err(invalid(
                "width",
                format!("m = {m} must be positive and even for the symmetric initialisation"),
            ));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut w = Vec::with_capacity(m * p);
        let mut a = Vec::with_capacity(m * d);
        for _ in 0..m / 2 {
            let wr: Vec<f64> = (0..p).map(|_| StandardNormal.sample(&mut rng)).collect();
            let ar: Vec<f64> = (0..d)
                .map(|_| {
                    if rand::RngExt::random::<bool>(&mut rng) {
                        1.0
                    } else {
                        -1.0
                    }
                })
                .collect();
            w.extend(&wr);
            a.extend(&ar);
            w.extend(&wr);
            a.extend(ar.iter().map(|v| -v));
        }
        Ok(Self {
            w: rows_of(w, p),
            a: rows_of(a, d),
        })
    }

    /// Width m.
    pub fn m(&self) -> usize {
        self.w.nrows()
    }

    /// Input dimension p.
    pub fn p(&self) -> usize {
        self.w.ncols()
    }

    /// Output dimension d.
    pub fn d(&self) -> usize {
        self.a.ncols()
    }

    /// The weights as row-major slices (borrowed when in standard layout).
    fn flat(&self) -> Flat<'_> {
        Flat {
            w: row_major(self.w.view()),
            a: row_major(self.a.view()),
            m: self.m(),
            p: self.p(),
            d: self.d(),
        }
    }

    /// f_W(z) for the rows of `z` (`[n, p]`): `[n, d]`.
    pub fn forward(&self, z: ArrayView2<f64>) -> Array2<f64> {
        let f = self.flat();
        rows_of(f.forward(&row_major(z)), f.d)
    }

    /// The empirical NTK of the first layer per output coordinate,
    /// (z_iᵀz_j)·(1/m)·Σ_r 1[w_rᵀz_i > 0]·1[w_rᵀz_j > 0], n × n for the rows of `z`.
    /// (For ±1 output weights it is the same for every output coordinate.)
    pub fn empirical_ntk(&self, z: ArrayView2<f64>) -> Array2<f64> {
        let n = z.nrows();
        rows_of(self.flat().empirical_ntk(&row_major(z)), n)
    }

    /// The gradient of output coordinate `k` at input `z` with respect to w (m × p):
    /// m^{−1/2}·a_{r,k}·1[w_rᵀz > 0]·z for each neuron r.
    pub fn grad(&self, z: ArrayView1<f64>, k: usize) -> Array2<f64> {
        let f = self.flat();
        rows_of(f.grad(&contiguous(z), k), f.p)
    }

    /// One full-batch gradient-descent step on L = (1/2N)·Σ_j ‖f(z_j) − y_j‖² with step η,
    /// for inputs `z` (`[N, p]`) and labels `y` (`[N, d]`).
    pub fn gd_step(&mut self, z: ArrayView2<f64>, y: ArrayView2<f64>, eta: f64) {
        let grad = self.flat().gradient(&row_major(z), &row_major(y));
        self.w
            .iter_mut()
            .zip(&grad)
            .for_each(|(w, g)| *w -= eta * g);
    }
}

/// The network's weights as row-major slices, for the loops below.
struct Flat<'a> {
    w: std::borrow::Cow<'a, [f64]>,
    a: std::borrow::Cow<'a, [f64]>,
    m: usize,
    p: usize,
    d: usize,
}

impl Flat<'_> {
    fn pre(&self, r: usize, z: &[f64]) -> f64 {
        self.w[r * self.p..(r + 1) * self.p]
            .iter()
            .zip(z)
            .map(|(a, b)| a * b)
            .sum()
    }

    fn forward(&self, z: &[f64]) -> Vec<f64> {
        let n = z.len().checked_div(self.p).unwrap_or(0);
        let scale = 1.0 / (self.m as f64).sqrt();
        let mut out = vec![0.0; n * self.d];
        for i in 0..n {
            let zi = &z[i * self.p..(i + 1) * self.p];
            for r in 0..self.m {
                let h = self.pre(r, zi);
                if h > 0.0 {
                    for k in 0..self.d {
                        out[i * self.d + k] += scale * self.a[r * self.d + k] * h;
                    }
                }
            }
        }
        out
    }

    fn empirical_ntk(&self, z: &[f64]) -> Vec<f64> {
        let n = z.len().checked_div(self.p).unwrap_or(0);
        let act: Vec<Vec<bool>> = (0..n)
            .map(|i| {
                (0..self.m)
                    .map(|r| self.pre(r, &z[i * self.p..(i + 1) * self.p]) > 0.0)
                    .collect()
            })
            .collect();
        let mut h = vec![0.0; n * n];
        for i in 0..n {
            for j in i..n {
                let both = act[i]
                    .iter()
                    .zip(&act[j])
                    .filter(|(a, b)| **a && **b)
                    .count() as f64;
                let ip: f64 = z[i * self.p..(i + 1) * self.p]
                    .iter()
                    .zip(&z[j * self.p..(j + 1) * self.p])
                    .map(|(a, b)| a * b)
                    .sum();
                h[i * n + j] = ip * both / self.m as f64;
                h[j * n + i] = h[i * n + j];
            }
        }
        h
    }

    fn grad(&self, z: &[f64], k: usize) -> Vec<f64> {
        let scale = 1.0 / (self.m as f64).sqrt();
        let mut g = vec![0.0; self.m * self.p];
        for r in 0..self.m {
            if self.pre(r, z) > 0.0 {
                let c = scale * self.a[r * self.d + k];
                for (gi, zi) in g[r * self.p..(r + 1) * self.p].iter_mut().zip(z) {
                    *gi = c * zi;
                }
            }
        }
        g
    }

    /// ∂L/∂w of the full-batch loss, row-major m × p.
    fn gradient(&self, z: &[f64], y: &[f64]) -> Vec<f64> {
        let n = z.len().checked_div(self.p).unwrap_or(0);
        let resid: Vec<f64> = self.forward(z).iter().zip(y).map(|(f, t)| f - t).collect();
        let scale = 1.0 / (self.m as f64).sqrt();
        let mut grad = vec![0.0; self.m * self.p];
        for j in 0..n {
            let zj = &z[j * self.p..(j + 1) * self.p];
            for r in 0..self.m {
                if self.pre(r, zj) > 0.0 {
                    let c: f64 = (0..self.d)
                        .map(|k| self.a[r * self.d + k] * resid[j * self.d + k])
                        .sum::<f64>()
                        * scale
                        / n as f64;
                    for (g, zi) in grad[r * self.p..(r + 1) * self.p].iter_mut().zip(zj) {
                        *g += c * zi;
                    }
                }
            }
        }
        grad
    }
}
