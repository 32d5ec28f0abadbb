//! The fused GroupNorm + affine (+ SiLU) on burn-flex, for f32 tensors (other dtypes
//! take [`crate::composed`]). Each (item, group) block is contiguous in `[N, C, …]`
//! layout and independent of the others, so blocks run on rayon; every sum inside a
//! block runs in one fixed order, and the γ/β gradients add the blocks' partial sums in
//! item order, so results do not depend on the thread count.

use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

use crate::math::{sigmoid_f32, silu_grad_f32, sum_lanes, values, vectorized};
use crate::{GnGrads, GroupNormKernel, composed};

/// (μ, 1/√(σ² + ε)) of one block, σ² the biased variance by two passes.
#[inline(always)]
fn stats(block: &[f32], eps: f64) -> (f32, f32) {
    let m = block.len().max(1) as f64;
    let mean = (sum_lanes(block, |v| v) / m) as f32;
    let var = sum_lanes(block, |v| (v - mean) * (v - mean)) / m;
    (mean, (1.0 / (var + eps).sqrt()) as f32)
}

fn is_f32(ts: &[&FlexTensor]) -> bool {
    ts.iter().all(|t| t.dtype() == DType::F32)
}

/// The block geometry: values per (item, group) block and per channel.
fn geometry(shape: &Shape, groups: usize) -> (usize, usize) {
    let (n, c) = (shape[0], shape[1]);
    let block = shape.num_elements() / (n * groups).max(1);
    (block, block / (c / groups).max(1))
}

impl GroupNormKernel for Flex {
    fn gn_forward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FlexTensor {
        if !is_f32(&[&x, &gamma, &beta]) {
            return composed::forward::<Flex>(x, gamma, beta, groups, eps, silu);
        }
        let shape = x.shape();
        let (block, plane) = geometry(&shape, groups);
        let (xs, gs, bs) = (values(&x), values(&gamma), values(&beta));
        let cpg = block / plane.max(1);
        let mut out = vec![0.0f32; xs.len()];
        out.par_chunks_mut(block.max(1))
            .zip(xs.par_chunks(block.max(1)))
            .enumerate()
            .for_each(|(b, (o, xb))| {
                vectorized(|| {
                    let (mean, rstd) = stats(xb, eps);
                    let first = (b % groups) * cpg;
                    for (k, (oc, xc)) in o.chunks_mut(plane).zip(xb.chunks(plane)).enumerate() {
                        // z = x·scale + shift with scale = γ·rstd, shift = β − μ·scale.
                        let scale = gs[first + k] * rstd;
                        let shift = bs[first + k] - mean * scale;
                        match silu {
                            true => affine_into::<true>(oc, xc, scale, shift),
                            false => affine_into::<false>(oc, xc, scale, shift),
                        }
                    }
                })
            });
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    fn gn_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        grad: FlexTensor,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> GnGrads<Flex> {
        if !is_f32(&[&x, &gamma, &beta, &grad]) {
            return composed::backward::<Flex>(x, gamma, beta, grad, groups, eps, silu);
        }
        let shape = x.shape();
        let (n, c) = (shape[0], shape[1]);
        let (block, plane) = geometry(&shape, groups);
        let cpg = block / plane.max(1);
        let (xs, gs, bs, dys) = (values(&x), values(&gamma), values(&beta), values(&grad));
        let mut dx = vec![0.0f32; xs.len()];
        // Per (item, channel): Σ dz·x̂ and Σ dz, in the blocks' channel order.
        let mut partial = vec![(0.0f64, 0.0f64); n * c];
        dx.par_chunks_mut(block.max(1))
            .zip(partial.par_chunks_mut(cpg.max(1)))
            .enumerate()
            .for_each(|(b, (dxb, part))| {
                let r = b * block..(b + 1) * block;
                let first = (b % groups) * cpg;
                let params = (&gs[first..first + cpg], &bs[first..first + cpg]);
                vectorized(|| {
                    block_backward(
                        &xs[r.clone()],
                        &dys[r],
                        params,
                        plane,
                        (eps, silu),
                        dxb,
                        part,
                    )
                });
            });
        let (mut d_gamma, mut d_beta) = (vec![0.0f64; c], vec![0.0f64; c]);
        for item in partial.chunks(c) {
            for (ch, (dg, db)) in item.iter().enumerate() {
                d_gamma[ch] += dg;
                d_beta[ch] += db;
            }
        }
        let vec1 = |v: Vec<f64>| {
            let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
            FlexTensor::from_data(TensorData::new(v, [c]))
        };
        GnGrads {
            x: FlexTensor::from_data(TensorData::new(dx, shape)),
            gamma: vec1(d_gamma),
            beta: vec1(d_beta),
        }
    }
}

/// One channel's sweep of the backward pass: dz (times SiLU′ when `SILU`) and its two
/// sums Σdz, Σdz·x̂ (f32 lanes in runs of 256, runs added in f64: a fixed order), with
/// γ·dz written to `out`. dz is computed by a plain loop of its own, which the compiler
/// vectorises (e^x included); inside the lanes' loop it stayed scalar.
#[inline(always)]
fn channel_sweep<const SILU: bool>(
    xs: &[f32],
    dys: &[f32],
    out: &mut [f32],
    (mean, rstd): (f32, f32),
    (g, be): (f32, f32),
) -> (f64, f64) {
    if !SILU {
        return plain_sweep(xs, dys, out, (mean, rstd), g);
    }
    for ((o, &v), &d) in out.iter_mut().zip(xs).zip(dys) {
        *o = d * silu_grad_f32((v - mean) * rstd * g + be);
    }
    let (mut db, mut dg) = (0.0f64, 0.0f64);
    for (x, dz) in xs.chunks(256).zip(out.chunks(256)) {
        let (mut lane_db, mut lane_dg) = ([0.0f32; 8], [0.0f32; 8]);
        let (cx, cz) = (x.chunks_exact(8), dz.chunks_exact(8));
        let (tx, tz) = (cx.remainder(), cz.remainder());
        for (x8, z8) in cx.zip(cz) {
            for j in 0..8 {
                lane_db[j] += z8[j];
                lane_dg[j] += z8[j] * ((x8[j] - mean) * rstd);
            }
        }
        for (j, (&v, &z)) in tx.iter().zip(tz).enumerate() {
            lane_db[j] += z;
            lane_dg[j] += z * ((v - mean) * rstd);
        }
        db += lane_db.iter().map(|&v| v as f64).sum::<f64>();
        dg += lane_dg.iter().map(|&v| v as f64).sum::<f64>();
    }
    for o in out.iter_mut() {
        *o *= g;
    }
    (db, dg)
}

/// [`channel_sweep`] without SiLU: dz = dy, its sums and γ·dz in one loop (nothing in
/// it keeps the compiler from vectorising it).
#[inline(always)]
fn plain_sweep(
    xs: &[f32],
    dys: &[f32],
    out: &mut [f32],
    (mean, rstd): (f32, f32),
    g: f32,
) -> (f64, f64) {
    let (mut db, mut dg) = (0.0f64, 0.0f64);
    for ((x, dy), o) in xs.chunks(256).zip(dys.chunks(256)).zip(out.chunks_mut(256)) {
        let (mut lane_db, mut lane_dg) = ([0.0f32; 8], [0.0f32; 8]);
        let (cx, cy, mut co) = (x.chunks_exact(8), dy.chunks_exact(8), o.chunks_exact_mut(8));
        let (tx, ty) = (cx.remainder(), cy.remainder());
        for ((x8, y8), o8) in cx.zip(cy).zip(&mut co) {
            for j in 0..8 {
                lane_db[j] += y8[j];
                lane_dg[j] += y8[j] * ((x8[j] - mean) * rstd);
                o8[j] = y8[j] * g;
            }
        }
        for (j, ((&v, &d), o)) in tx.iter().zip(ty).zip(co.into_remainder()).enumerate() {
            lane_db[j] += d;
            lane_dg[j] += d * ((v - mean) * rstd);
            *o = d * g;
        }
        db += lane_db.iter().map(|&v| v as f64).sum::<f64>();
        dg += lane_dg.iter().map(|&v| v as f64).sum::<f64>();
    }
    (db, dg)
}

/// `y = act(x·scale + shift)` over one channel's plane, the activation chosen at
/// compile time so that the loop has no branch and vectorises.
#[inline(always)]
fn affine_into<const SILU: bool>(y: &mut [f32], x: &[f32], scale: f32, shift: f32) {
    for (o, &v) in y.iter_mut().zip(x) {
        let z = v * scale + shift;
        *o = if SILU { z * sigmoid_f32(z) } else { z };
    }
}

/// One block's backward pass: the first sweep writes g = γ·dz into `dx` and sums
/// Σg, Σg·x̂ (the group's) and Σdz·x̂, Σdz (each channel's, into `part`); the second
/// turns g into ∂x = (g − Σg/M − x̂·Σg·x̂/M)·rstd.
#[inline(always)]
fn block_backward(
    xb: &[f32],
    dyb: &[f32],
    (gs, bs): (&[f32], &[f32]),
    plane: usize,
    (eps, silu): (f64, bool),
    dx: &mut [f32],
    part: &mut [(f64, f64)],
) {
    let (mean, rstd) = stats(xb, eps);
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for k in 0..gs.len() {
        let span = k * plane..(k + 1) * plane;
        let (g, be) = (gs[k], bs[k]);
        let (xs, dys, out) = (&xb[span.clone()], &dyb[span.clone()], &mut dx[span]);
        let (db, dg) = match silu {
            true => channel_sweep::<true>(xs, dys, out, (mean, rstd), (g, be)),
            false => channel_sweep::<false>(xs, dys, out, (mean, rstd), (g, be)),
        };
        part[k] = (dg, db);
        s1 += db * g as f64;
        s2 += dg * g as f64;
    }
    let m = xb.len().max(1) as f64;
    let (mean_g, mean_ga) = ((s1 / m) as f32, (s2 / m) as f32);
    for (&v, out) in xb.iter().zip(dx.iter_mut()) {
        let a = (v - mean) * rstd;
        *out = (*out - mean_g - a * mean_ga) * rstd;
    }
}
