//! The paper's error decomposition, measured term by term.
//!
//! Han, Razaviyayn & Xu bound the error of the GD-trained network f_net,k against the
//! regression function f* by four terms (after Kuzborskij & Szepesvári), which are
//! exactly the legs of a triangle inequality between five predictors at the test inputs:
//!
//! - **coupling** ‖f_net,k − f_ker,k(Y)‖: the width-m network after k GD steps against
//!   kernel GD on its analytic NTK with the same labels and step (∝ m^{−1/2} at fixed k);
//! - **label mismatch** ‖f_ker,k(Y) − f_ker,k(F*)‖: noisy labels X₀ against the clean
//!   labels F* = f*(z_j) at the same inputs (the variance; grows with k, falls with n);
//! - **early stopping** ‖f_ker,k(F*) − f_ker,∞(F*)‖: k steps on clean labels against their
//!   limit, the minimum-norm interpolant (the bias of stopping; falls with k);
//! - **approximation** ‖f_ker,∞(F*) − f*‖: how well the kernel interpolant of f* at n
//!   inputs approximates f* (falls with n).
//!
//! ‖·‖ is the root mean square over test triples. The total ‖f_net,k − f*‖ is at most the
//! sum; for the kernel estimator the first term drops.

use ndarray::Array2;

use crate::dsm::{Target, Triples};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::network::TwoLayerRelu;
use crate::study::{Fit, msd};

/// The ridge used for the interpolating limit f_ker,∞ (γ → 0).
pub const INTERPOLATION_GAMMA: f64 = 1e-10;

/// The kernel terms at one (n, k), as root mean squares over the test triples.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelTerms {
    /// Training triples.
    pub n: usize,
    /// GD steps.
    pub k: usize,
    /// Seed of the training draw.
    pub seed: u64,
    /// ‖f_ker,k(Y) − f_ker,k(F*)‖.
    pub label_mismatch: f64,
    /// ‖f_ker,k(F*) − f_ker,∞(F*)‖.
    pub early_stopping: f64,
    /// ‖f_ker,∞(F*) − f*‖.
    pub approximation: f64,
    /// ‖f_ker,k(Y) − f*‖: the kernel estimator's total error.
    pub total: f64,
}

/// The network terms at one (m, k), on the same draw as the kernel terms at that k.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NetworkTerms {
    /// Width.
    pub m: usize,
    /// GD steps.
    pub k: usize,
    /// ‖f_net,k − f_ker,k(Y)‖.
    pub coupling: f64,
    /// ‖f_net,k − f*‖.
    pub total: f64,
    /// The sum of the four terms (the triangle-inequality bound on `total`).
    pub bound: f64,
}

fn rms(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    msd(a, b).sqrt()
}

/// Kernel terms for every k in `ks` on one draw of `n` triples (t ~ U[`t_range`]).
pub fn kernel_terms(
    target: &Target,
    n: usize,
    ks: &[usize],
    t_range: (f64, f64),
    seed: u64,
) -> Result<Vec<KernelTerms>> {
    let (tr, te) = draws(target, n, t_range, seed);
    terms_of(&Fit::new(&tr, &te)?, &tr, &te, ks, seed)
}

/// The kernel terms of one fitted draw.
fn terms_of(
    fit: &Fit,
    tr: &Triples,
    te: &Triples,
    ks: &[usize],
    seed: u64,
) -> Result<Vec<KernelTerms>> {
    let clean = fit.sp.with_labels(tr.f_star.view())?;
    let f_inf = fit.at_test(&clean.alpha_ridge(INTERPOLATION_GAMMA));
    let approximation = rms(&f_inf, &te.f_star);
    Ok(ks
        .iter()
        .map(|&k| {
            let f_y = fit.at_test(&fit.sp.alpha_gd(1.0, k as u32));
            let f_f = fit.at_test(&clean.alpha_gd(1.0, k as u32));
            KernelTerms {
                n: tr.len(),
                k,
                seed,
                label_mismatch: rms(&f_y, &f_f),
                early_stopping: rms(&f_f, &f_inf),
                approximation,
                total: rms(&f_y, &te.f_star),
            }
        })
        .collect())
}

/// Network terms for every width in `ms` and k in `ks` on one draw of `n` triples; each
/// network is trained once, its gap read off at each k on the way.
pub fn network_terms(
    target: &Target,
    n: usize,
    ms: &[usize],
    ks: &[usize],
    t_range: (f64, f64),
    seed: u64,
) -> Result<Vec<NetworkTerms>> {
    if ks.windows(2).any(|w| w[0] >= w[1]) {
        return Err(crate::error::invalid("ks", "step counts must increase"));
    }
    let (tr, te) = draws(target, n, t_range, seed);
    let fit = Fit::new(&tr, &te)?;
    let kernel = terms_of(&fit, &tr, &te, ks, seed)?;
    let (p, d) = (tr.p(), tr.d());
    // η = 1/max κ(z_i, z_i) for the network is step 1 on the rescaled kernel.
    let kmax =
        tr.z.rows()
            .into_iter()
            .map(|z| Kernel::Ntk1.eval(z, z))
            .fold(0.0, f64::max);
    let mut out = Vec::new();
    for &m in ms {
        let mut net = TwoLayerRelu::symmetric(m, p, d, 11 + seed)?;
        let mut done = 0;
        for (kt, &k) in kernel.iter().zip(ks) {
            for _ in done..k {
                net.gd_step(tr.z.view(), tr.y.view(), 1.0 / kmax);
            }
            done = k;
            let f_net = net.forward(te.z.view());
            let f_ker = fit.at_test(&fit.sp.alpha_gd(1.0, k as u32));
            let coupling = rms(&f_net, &f_ker);
            out.push(NetworkTerms {
                m,
                k,
                coupling,
                total: rms(&f_net, &te.f_star),
                bound: coupling + kt.label_mismatch + kt.early_stopping + kt.approximation,
            });
        }
    }
    Ok(out)
}

fn draws(target: &Target, n: usize, t_range: (f64, f64), seed: u64) -> (Triples, Triples) {
    let tr = Triples::draw(target, n, t_range.0, t_range.1, 31 + 7919 * seed + n as u64);
    let te = Triples::draw(target, 1000, t_range.0, t_range.1, 77 + 7919 * seed);
    (tr, te)
}
