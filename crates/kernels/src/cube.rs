//! The fused GroupNorm + affine (+ SiLU) and SiLU as cubecl kernels, for burn's `Cube`
//! backend (wgpu, CUDA), f32 only (other dtypes take [`crate::composed`]).
//!
//! - GroupNorm: one cube of [`THREADS`] units per (item, group) block. Each unit sums a
//!   fixed stride of the block, and the units' sums meet in a shared-memory tree whose
//!   shape depends only on [`THREADS`], so the result is the same on every run and
//!   every device of a runtime. Forward: mean, centred sum of squares, then the affine
//!   (and SiLU) written once. Backward: per channel Σdz and Σdz·x̂ (the γ and β
//!   gradients of the item, and the group's two sums), then ∂x in one more sweep; a
//!   second kernel adds the items' γ/β partials in item order.
//! - SiLU: one unit per element each way.
//!
//! Sums are f32 (WGSL has no f64): each unit adds ⌈M/THREADS⌉ values in sequence and
//! the tree adds log₂ THREADS levels, which is the bound the tests derive their
//! tolerance from.

use burn::backend::TensorMetadata;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};

use crate::activation::{SiluKernel, SiluOps};
use crate::{GnGrads, GroupNormKernel, GroupNormOps, composed};

/// Units per cube of the GroupNorm kernels: a power of two, which the tree sum needs.
pub const THREADS: u32 = 256;

/// The sum of every unit's `v` over the cube, by a fixed binary tree in shared memory;
/// every unit gets the total. All units of the cube must call it.
#[cube]
fn cube_sum(v: f32, #[comptime] threads: usize) -> f32 {
    let mut shared = Shared::<[f32]>::new_slice(threads);
    let unit = UNIT_POS_X as usize;
    shared[unit] = v;
    sync_cube();
    // CUBE_DIM_X is `threads`; read at run time, the loop is a runtime loop.
    let mut stride = (CUBE_DIM_X / 2) as usize;
    while stride > 0 {
        if unit < stride {
            shared[unit] += shared[unit + stride];
        }
        sync_cube();
        stride /= 2;
    }
    let total = shared[0];
    sync_cube();
    total
}

/// (μ, 1/√(σ² + ε)) of the block of `len` values at `base`, σ² by two passes.
#[cube]
fn block_stats(
    x: &Tensor<f32>,
    base: usize,
    len: usize,
    eps: f32,
    #[comptime] threads: usize,
) -> (f32, f32) {
    let unit = UNIT_POS_X as usize;
    let m = f32::cast_from(len as u32);
    let mut s = 0.0f32;
    let mut i = unit;
    while i < len {
        s += x[base + i];
        i += threads;
    }
    let mean = cube_sum(s, threads) / m;
    let mut q = 0.0f32;
    let mut j = unit;
    while j < len {
        let d = x[base + j] - mean;
        q += d * d;
        j += threads;
    }
    let var = cube_sum(q, threads) / m;
    (mean, 1.0f32 / f32::sqrt(var + eps))
}

/// SiLU′(z) = s·(1 + z·(1 − s)), s = sigmoid(z).
#[cube]
fn silu_grad(z: f32) -> f32 {
    let s = 1.0f32 / (1.0f32 + f32::exp(-z));
    s * (1.0f32 + z * (1.0f32 - s))
}

/// The block this cube handles, or `blocks` when it has none (a padded cube).
#[cube]
fn block_index(blocks: usize) -> usize {
    let b = CUBE_POS;
    if b < blocks { b } else { blocks }
}

/// The shape of a GroupNorm launch: `blocks` (item, group) blocks of `len` values, each
/// channel a plane of `plane` values, `groups` groups per item.
#[derive(CubeLaunch, CubeType)]
struct GnArgs {
    blocks: u32,
    len: u32,
    plane: u32,
    groups: u32,
    eps: f32,
}

/// This cube's block: (its first value, its first channel, μ, 1/√(σ² + ε)). The kernels
/// return before calling it from a cube past the last block.
#[cube]
fn block_setup(
    x: &Tensor<f32>,
    args: &GnArgs,
    b: usize,
    #[comptime] threads: usize,
) -> (usize, usize, f32, f32) {
    let len = args.len as usize;
    let base = b * len;
    let (mean, rstd) = block_stats(x, base, len, args.eps, threads);
    let first = (b % args.groups as usize) * (len / args.plane as usize);
    (base, first, mean, rstd)
}

#[cube(launch)]
fn gn_forward_kernel(
    x: &Tensor<f32>,
    gamma: &Tensor<f32>,
    beta: &Tensor<f32>,
    out: &mut Tensor<f32>,
    args: GnArgs,
    #[comptime] silu: bool,
    #[comptime] threads: usize,
) {
    let b = block_index(args.blocks as usize);
    if b == args.blocks as usize {
        terminate!();
    }
    let (base, first, mean, rstd) = block_setup(x, &args, b, threads);
    let (len, plane) = (args.len as usize, args.plane as usize);
    let mut i = UNIT_POS_X as usize;
    while i < len {
        let c = first + i / plane;
        let z = (x[base + i] - mean) * rstd * gamma[c] + beta[c];
        if silu {
            out[base + i] = z / (1.0f32 + f32::exp(-z));
        } else {
            out[base + i] = z;
        }
        i += threads;
    }
}

/// dz at one value: the output gradient, times SiLU′(z) when `silu`.
#[cube]
fn dz_at(a: f32, dy: f32, g: f32, be: f32, #[comptime] silu: bool) -> f32 {
    if silu { dy * silu_grad(a * g + be) } else { dy }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn gn_backward_kernel(
    x: &Tensor<f32>,
    gamma: &Tensor<f32>,
    beta: &Tensor<f32>,
    dy: &Tensor<f32>,
    dx: &mut Tensor<f32>,
    partial: &mut Tensor<f32>,
    args: GnArgs,
    #[comptime] silu: bool,
    #[comptime] threads: usize,
) {
    let (blocks, len, plane) = (args.blocks as usize, args.len as usize, args.plane as usize);
    let b = block_index(blocks);
    if b == blocks {
        terminate!();
    }
    let (base, first, mean, rstd) = block_setup(x, &args, b, threads);
    let (cpg, unit) = (len / plane, UNIT_POS_X as usize);
    // partial: [2, N·C], the item's Σdz·x̂ then Σdz per channel, at b·cpg + k.
    let half = blocks * cpg;
    let mut s1 = 0.0f32;
    let mut s2 = 0.0f32;
    for k in 0..cpg {
        let (g, be) = (gamma[first + k], beta[first + k]);
        let mut db = 0.0f32;
        let mut dg = 0.0f32;
        let mut i = unit;
        while i < plane {
            let idx = base + k * plane + i;
            let a = (x[idx] - mean) * rstd;
            let dz = dz_at(a, dy[idx], g, be, silu);
            db += dz;
            dg += dz * a;
            i += threads;
        }
        let db = cube_sum(db, threads);
        let dg = cube_sum(dg, threads);
        if unit == 0 {
            partial[b * cpg + k] = dg;
            partial[half + b * cpg + k] = db;
        }
        s1 += db * g;
        s2 += dg * g;
    }
    let m = f32::cast_from(len as u32);
    let (mean_g, mean_ga) = (s1 / m, s2 / m);
    let mut i = unit;
    while i < len {
        let c = first + i / plane;
        let (g, be) = (gamma[c], beta[c]);
        let a = (x[base + i] - mean) * rstd;
        let dz = dz_at(a, dy[base + i], g, be, silu);
        dx[base + i] = (dz * g - mean_g - a * mean_ga) * rstd;
        i += threads;
    }
}

/// `d_gamma[c] = Σ_n partial[n·C + c]` and `d_beta[c] = Σ_n partial[N·C + n·C + c]`, in
/// item order: one unit per channel.
#[cube(launch)]
fn channel_sums_kernel(
    partial: &Tensor<f32>,
    d_gamma: &mut Tensor<f32>,
    d_beta: &mut Tensor<f32>,
    items: u32,
) {
    let (n, c, ch) = (items as usize, d_gamma.len(), ABSOLUTE_POS);
    if ch >= c {
        terminate!();
    }
    let mut g = 0.0f32;
    let mut b = 0.0f32;
    for item in 0..n {
        g += partial[item * c + ch];
        b += partial[n * c + item * c + ch];
    }
    d_gamma[ch] = g;
    d_beta[ch] = b;
}

#[cube(launch)]
fn silu_forward_kernel(x: &Tensor<f32>, out: &mut Tensor<f32>) {
    let i = ABSOLUTE_POS;
    if i < x.len() {
        let v = x[i];
        out[i] = v / (1.0f32 + f32::exp(-v));
    }
}

#[cube(launch)]
fn silu_backward_kernel(x: &Tensor<f32>, dy: &Tensor<f32>, out: &mut Tensor<f32>) {
    let i = ABSOLUTE_POS;
    if i < x.len() {
        out[i] = dy[i] * silu_grad(x[i]);
    }
}

fn is_f32(ts: &[&CubeTensor]) -> bool {
    ts.iter().all(|t| t.dtype == DType::F32)
}

/// An empty f32 tensor of `shape` on `like`'s device.
fn empty_like(like: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_dtype(like.client.clone(), like.device.clone(), shape, DType::F32)
}

/// The launch grid for `blocks` cubes of [`THREADS`] units: at most 65 535 along x.
fn block_grid(blocks: usize) -> (CubeCount, CubeDim) {
    let x = blocks.clamp(1, 65_535);
    let y = blocks.div_ceil(x).max(1);
    (
        CubeCount::Static(x as u32, y as u32, 1),
        CubeDim::new_1d(THREADS),
    )
}

/// The launch arguments for `x`'s shape, and the number of blocks.
fn gn_args(shape: &Shape, groups: usize, eps: f64) -> (GnArgsLaunch, usize) {
    let (n, c) = (shape[0], shape[1]);
    let blocks = n * groups;
    let len = shape.num_elements() / blocks.max(1);
    let plane = len / (c / groups).max(1);
    let [b, l, p, g] = [blocks, len, plane, groups].map(|v| v as u32);
    (GnArgsLaunch::new(b, l, p, g, eps as f32), blocks)
}

impl GroupNormKernel for CubeBackend {
    fn gn_forward(
        x: CubeTensor,
        gamma: CubeTensor,
        beta: CubeTensor,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> CubeTensor {
        if !is_f32(&[&x, &gamma, &beta]) {
            return composed::forward::<Self>(x, gamma, beta, groups, eps, silu);
        }
        let (x, gamma, beta) = (
            into_contiguous(x),
            into_contiguous(gamma),
            into_contiguous(beta),
        );
        let shape = x.shape();
        let (args, blocks) = gn_args(&shape, groups, eps);
        let out = empty_like(&x, shape);
        let (count, dim) = block_grid(blocks);
        gn_forward_kernel::launch(
            &x.client,
            count,
            dim,
            x.clone().into_tensor_arg(),
            gamma.into_tensor_arg(),
            beta.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            args,
            silu,
            THREADS as usize,
        );
        out
    }

    fn gn_backward(
        x: CubeTensor,
        gamma: CubeTensor,
        beta: CubeTensor,
        grad: CubeTensor,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> GnGrads<Self> {
        if !is_f32(&[&x, &gamma, &beta, &grad]) {
            return composed::backward::<Self>(x, gamma, beta, grad, groups, eps, silu);
        }
        let [x, gamma, beta, grad] = [x, gamma, beta, grad].map(into_contiguous);
        let shape = x.shape();
        let (n, c) = (shape[0], shape[1]);
        let (args, blocks) = gn_args(&shape, groups, eps);
        let dx = empty_like(&x, shape);
        let partial = empty_like(&x, Shape::from(vec![2 * n * c]));
        let (count, dim) = block_grid(blocks);
        gn_backward_kernel::launch(
            &x.client,
            count,
            dim,
            x.clone().into_tensor_arg(),
            gamma.into_tensor_arg(),
            beta.into_tensor_arg(),
            grad.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            args,
            silu,
            THREADS as usize,
        );
        let (d_gamma, d_beta) = channel_sums(partial, n, c);
        GnGrads {
            x: dx,
            gamma: d_gamma,
            beta: d_beta,
        }
    }
}

/// The γ and β gradients, `[C]` each, from the items' partials `[2·N·C]`.
fn channel_sums(partial: CubeTensor, n: usize, c: usize) -> (CubeTensor, CubeTensor) {
    let [d_gamma, d_beta] = [0, 1].map(|_| empty_like(&partial, Shape::from(vec![c])));
    let (count, dim) = elementwise_grid(&partial, c);
    channel_sums_kernel::launch(
        &partial.client,
        count,
        dim,
        partial.clone().into_tensor_arg(),
        d_gamma.clone().into_tensor_arg(),
        d_beta.clone().into_tensor_arg(),
        n as u32,
    );
    (d_gamma, d_beta)
}

/// The grid of one unit per element for `len` elements.
fn elementwise_grid(client: &CubeTensor, len: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(&client.client, len);
    (calculate_cube_count_elemwise(&client.client, len, dim), dim)
}

impl SiluKernel for CubeBackend {
    fn silu_forward(x: CubeTensor) -> CubeTensor {
        if !is_f32(&[&x]) {
            return crate::activation::composed_forward::<Self>(x);
        }
        let x = into_contiguous(x);
        let out = empty_like(&x, x.shape());
        let (count, dim) = elementwise_grid(&x, x.shape().num_elements());
        silu_forward_kernel::launch(
            &x.client,
            count,
            dim,
            x.clone().into_tensor_arg(),
            out.clone().into_tensor_arg(),
        );
        out
    }

    fn silu_backward(x: CubeTensor, grad: CubeTensor) -> CubeTensor {
        if !is_f32(&[&x, &grad]) {
            return crate::activation::composed_backward::<Self>(x, grad);
        }
        let (x, grad) = (into_contiguous(x), into_contiguous(grad));
        let out = empty_like(&x, x.shape());
        let (count, dim) = elementwise_grid(&x, x.shape().num_elements());
        silu_backward_kernel::launch(
            &x.client,
            count,
            dim,
            x.clone().into_tensor_arg(),
            grad.into_tensor_arg(),
            out.clone().into_tensor_arg(),
        );
        out
    }
}

impl GroupNormOps for CubeBackend {
    fn fused_group_norm(
        x: CubeTensor,
        gamma: CubeTensor,
        beta: CubeTensor,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> CubeTensor {
        Self::gn_forward(x, gamma, beta, groups, eps, silu)
    }

    fn fused_group_norm_backward(
        x: CubeTensor,
        gamma: CubeTensor,
        beta: CubeTensor,
        grad: CubeTensor,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        Self::gn_backward(x, gamma, beta, grad, groups, eps, silu).into_tuple()
    }
}

impl SiluOps for CubeBackend {
    fn fused_silu(x: CubeTensor) -> CubeTensor {
        Self::silu_forward(x)
    }

    fn fused_silu_backward(x: CubeTensor, grad: CubeTensor) -> CubeTensor {
        Self::silu_backward(x, grad)
    }
}
