//! The 2-D convolution and its three gradients on burn-flex, straight from NCHW, for
//! f32 (other dtypes take burn's own paths, [`crate::conv::ConvKernel`]'s defaults).
//!
//! Per image `n` and group `g`, with `P` output positions and `K = C_in/G · k_h · k_w`
//! taps, the column matrix `cols[K, P]` holds in row `(c, i, j)` the input plane `c`
//! shifted by tap `(i, j)` (zero where the tap falls in the padding). With both strides
//! 1 and the output as wide as the input, each row is one contiguous copy of the
//! shifted plane with the padded positions zeroed after. Then:
//! - forward: `out[g] = bias + W[g] · cols[g]`, written into the NCHW output;
//! - weight gradient: `dW[g] += dY[g] · cols[g]ᵀ` over runs of images whose length
//!   depends on the batch and map size only, the runs' partial sums added in run order
//!   (so the result is the same on any number of threads);
//! - input gradient: with stride 1 and one group, the convolution of `dY` with the
//!   kernel flipped and its channel axes swapped; otherwise `Wᵀ · dY` scattered back
//!   (col2im, the adjoint of building `cols`);
//! - bias gradient: one pass per channel, summed in f64.
//!
//! The products run on faer's matrix multiply, one thread each (`Par::Seq`), the runs of
//! images spread over rayon's threads. Every output element is the same sum of the same
//! products as the definition; only the order of the additions differs.

use burn::tensor::ops::ConvOptions;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Shapes and options of one 2-D convolution. Only the padding before each axis
/// matters: the output size fixes the rest.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub groups: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
}

/// The output size along axis `a` of a convolution of `len` values with kernel `k`, or
/// `None` when the dilated kernel does not fit the padded input.
pub(crate) fn out_len(len: usize, k: usize, a: usize, o: &ConvOptions<2>) -> Option<usize> {
    let (p, span) = (o.padding[a], o.dilation[a] * (k - 1) + 1);
    (len + p.0 + p.1)
        .checked_sub(span)
        .map(|v| v / o.stride[a] + 1)
}

impl Geometry {
    /// For input `[N, C_in, H, W]`, weight `[C_out, C_in/G, k_h, k_w]` and output
    /// `[N, C_out, O_h, O_w]`.
    pub fn new(x: [usize; 4], w: [usize; 4], out: [usize; 4], o: &ConvOptions<2>) -> Self {
        Self {
            batch: x[0],
            c_in: x[1],
            h: x[2],
            w: x[3],
            c_out: w[0],
            groups: o.groups,
            kh: w[2],
            kw: w[3],
            oh: out[2],
            ow: out[3],
            stride: o.stride,
            pad: [o.padding[0].0, o.padding[1].0],
            dilation: o.dilation,
        }
    }
    /// Output positions per image.
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    /// Taps per group: the rows of one group's column matrix.
    fn k_group(&self) -> usize {
        self.c_in / self.groups * self.kh * self.kw
    }
    /// Output channels per group.
    fn co_group(&self) -> usize {
        self.c_out / self.groups
    }
    fn x_img(&self) -> usize {
        self.c_in * self.h * self.w
    }
    fn out_img(&self) -> usize {
        self.c_out * self.p()
    }
    /// Input row (or column) of output index `o` at tap `t` along axis `a`, if inside.
    #[inline]
    fn src(&self, a: usize, o: usize, t: usize, len: usize) -> Option<usize> {
        let i = (o * self.stride[a] + t * self.dilation[a]).checked_sub(self.pad[a])?;
        (i < len).then_some(i)
    }
    /// Output columns whose tap `t` lands inside the input width: `lo..hi`.
    fn valid_cols(&self, t: usize) -> (usize, usize) {
        valid_range(self.ow, |o| self.src(1, o, t, self.w).is_some())
    }
    /// Images per product: enough that one spans about 512 output positions (small
    /// maps would otherwise make many small products).
    fn block(&self) -> usize {
        512usize.div_ceil(self.p().max(1)).max(1)
    }
}

/// Whether the NCHW forward pass is the faster one, as measured on the UNet's 3×3
/// layers: groups of more than four channels, a kernel larger than 1×1 and at least
/// 256 output positions per image (at 7×7 burn-flex's own path, whose tiles span
/// several images, was faster). Other shapes take burn-flex's convolution.
pub(crate) fn prefers_nchw(x: [usize; 4], w: [usize; 4], o: &ConvOptions<2>) -> bool {
    let positions = match (out_len(x[2], w[2], 0, o), out_len(x[3], w[3], 1, o)) {
        (Some(h), Some(v)) => h * v,
        _ => 0,
    };
    w[1] > 4 && w[2] * w[3] > 1 && positions >= 256
}

/// `lo..hi`: the indices below `len` where `inside` holds (a contiguous range).
fn valid_range(len: usize, inside: impl Fn(usize) -> bool) -> (usize, usize) {
    let lo = (0..len).find(|&o| inside(o)).unwrap_or(len);
    let hi = (lo..len).rfind(|&o| inside(o)).map_or(lo, |o| o + 1);
    (lo, hi)
}

/// Fill one image's columns from `x[C, H, W]`: row `r` starts at `r · ld` of `cols`
/// and holds the image's `P` values.
fn im2col(g: &Geometry, x: &[f32], cols: &mut [f32], ld: usize) {
    let (p, plane) = (g.p(), g.h * g.w);
    let mut r = 0;
    for xc in x.chunks_exact(plane).take(g.c_in) {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut cols[r * ld..r * ld + p];
                r += 1;
                if g.stride == [1, 1] && g.ow == g.w {
                    shifted_plane(g, xc, row, i, j);
                } else {
                    strided_row(g, xc, row, i, j);
                }
            }
        }
    }
}

/// One row of columns in general: output row by output row, the valid columns
/// gathered with the stride, the rest zero.
fn strided_row(g: &Geometry, xc: &[f32], row: &mut [f32], i: usize, j: usize) {
    let (lo, hi) = g.valid_cols(j);
    for (o, out) in row.chunks_exact_mut(g.ow).enumerate() {
        let Some(y) = g.src(0, o, i, g.h) else {
            out.fill(0.0);
            continue;
        };
        let xr = &xc[y * g.w..(y + 1) * g.w];
        out[..lo].fill(0.0);
        out[hi..].fill(0.0);
        for (q, v) in out[lo..hi].iter_mut().enumerate() {
            *v = xr[(lo + q) * g.stride[1] + j * g.dilation[1] - g.pad[1]];
        }
    }
}

/// One row of columns when both strides are 1 and the output is as wide as the input:
/// output position `q` reads input position `q + shift` of the flattened plane, so the
/// row is one contiguous copy; then the positions whose tap falls in the padding (whole
/// output rows above or below, and the columns that wrapped around) are zeroed.
fn shifted_plane(g: &Geometry, xc: &[f32], row: &mut [f32], i: usize, j: usize) {
    let (ti, tj) = (i * g.dilation[0], j * g.dilation[1]);
    let shift = (ti * g.w + tj) as isize - (g.pad[0] * g.w + g.pad[1]) as isize;
    let p = row.len() as isize;
    let start = (-shift).clamp(0, p) as usize;
    let end = (xc.len() as isize - shift).clamp(start as isize, p) as usize;
    row[..start].fill(0.0);
    row[end..].fill(0.0);
    if end > start {
        let from = (start as isize + shift) as usize;
        row[start..end].copy_from_slice(&xc[from..from + end - start]);
    }
    let (rlo, rhi) = valid_range(g.oh, |o| g.src(0, o, i, g.h).is_some());
    row[..rlo * g.ow].fill(0.0);
    row[rhi * g.ow..].fill(0.0);
    let (lo, hi) = g.valid_cols(j);
    if lo > 0 || hi < g.ow {
        for out in row[rlo * g.ow..rhi * g.ow].chunks_exact_mut(g.ow) {
            out[..lo].fill(0.0);
            out[hi..].fill(0.0);
        }
    }
}

/// Add `cols[K·G, P]` back into one image's gradient `dx[C, H, W]` (the adjoint of
/// [`im2col`]).
fn col2im(g: &Geometry, cols: &[f32], dx: &mut [f32]) {
    let (p, plane) = (g.p(), g.h * g.w);
    let mut rows = cols.chunks_exact(p);
    for dc in dx.chunks_exact_mut(plane).take(g.c_in) {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let Some(row) = rows.next() else { return };
                let (lo, hi) = g.valid_cols(j);
                for (o, src) in row.chunks_exact(g.ow).enumerate() {
                    let Some(r) = g.src(0, o, i, g.h) else {
                        continue;
                    };
                    let dr = &mut dc[r * g.w..(r + 1) * g.w];
                    if g.stride[1] == 1 {
                        let start = lo + j * g.dilation[1] - g.pad[1];
                        for (d, s) in dr[start..start + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d += *s;
                        }
                    } else {
                        for (q, s) in src[lo..hi].iter().enumerate() {
                            dr[(lo + q) * g.stride[1] + j * g.dilation[1] - g.pad[1]] += *s;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major `[rows, cols]` view of `v` starting at `at`, rows `ld` apart.
fn rm(v: &[f32], at: usize, (rows, cols): (usize, usize), ld: usize) -> MatRef<'_, f32> {
    let len = if rows == 0 { 0 } else { (rows - 1) * ld + cols };
    MatRef::from_row_major_slice_with_stride(&v[at..at + len], rows, cols, ld)
}

/// The mutable [`rm`], built as the transpose of a column-major view: faer 0.24.4's
/// `MatMut::from_row_major_slice_with_stride_mut` passes the row stride as the column
/// stride (a column-major view), which writes past the slice; `MatRef`'s is correct.
fn rm_mut(v: &mut [f32], at: usize, (rows, cols): (usize, usize), ld: usize) -> MatMut<'_, f32> {
    let len = if rows == 0 { 0 } else { (rows - 1) * ld + cols };
    MatMut::from_column_major_slice_with_stride_mut(&mut v[at..at + len], cols, rows, ld)
        .transpose_mut()
}

/// `dst (+)= lhs · rhs` on the calling thread.
fn gemm(dst: MatMut<'_, f32>, accumulate: bool, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
    let beta = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    matmul(dst, beta, lhs, rhs, 1.0f32, Par::Seq);
}

/// The batch split into contiguous runs of `len` images (the last may be shorter).
fn batch_runs(batch: usize, len: usize) -> Vec<std::ops::Range<usize>> {
    let len = len.max(1);
    (0..batch.div_ceil(len))
        .map(|r| r * len..((r + 1) * len).min(batch))
        .collect()
}

thread_local! {
    /// This thread's two scratch buffers (column matrices, block buffers), kept between
    /// calls so that a convolution neither allocates nor clears them again.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 2]> = const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

/// `f` on two scratch slices of `a` and `b` values from this thread's buffers, grown as
/// needed and never cleared: every caller writes each value before it reads it. (A
/// nested call on the same thread, which none of this file's makes, gets fresh ones.)
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let [x, y] = &mut *bufs;
            for (v, n) in [(&mut *x, a), (&mut *y, b)] {
                if v.len() < n {
                    v.resize(n, 0.0);
                }
            }
            f(&mut x[..a], &mut y[..b])
        }
        Err(_) => f(&mut vec![0.0; a], &mut vec![0.0; b]),
    })
}

/// Build the columns of images `first..first + imgs` side by side: `cols[K·G, imgs·P]`.
fn block_cols(g: &Geometry, x: &[f32], first: usize, imgs: usize, cols: &mut [f32]) {
    let (p, x_img, ld) = (g.p(), g.x_img(), imgs * g.p());
    for b in 0..imgs {
        let n = first + b;
        im2col(g, &x[n * x_img..(n + 1) * x_img], &mut cols[b * p..], ld);
    }
}

/// The convolution, `out[N, C_out, O_h, O_w]`: per block of images and group,
/// `out[g] = bias + W[g] · cols[g]`. With one image per block the product is written
/// into the output directly (each plane starting as its bias); otherwise into a block
/// buffer, then copied to the images' planes.
pub(crate) fn forward(g: &Geometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (p, kg, out_img) = (g.p(), g.k_group(), g.out_img());
    let nb = g.block();
    let mut out = vec![0.0f32; g.batch * out_img];
    out.par_chunks_mut(nb * out_img.max(1))
        .enumerate()
        .for_each(|(r, o)| {
            let imgs = o.len() / out_img.max(1);
            let ld = imgs * p;
            let block = if imgs > 1 { g.c_out * ld } else { 0 };
            with_scratch(g.groups * kg * ld, block, |cols, buf| {
                block_cols(g, x, r * nb, imgs, cols);
                if imgs == 1 {
                    return forward_block(g, (w, bias), cols, o, ld);
                }
                forward_block(g, (w, bias), cols, buf, ld);
                for (b, img) in o.chunks_exact_mut(out_img).enumerate() {
                    for (co, plane) in img.chunks_exact_mut(p).enumerate() {
                        plane.copy_from_slice(&buf[co * ld + b * p..][..p]);
                    }
                }
            });
        });
    out
}

/// `target[C_out, ld] = bias + W · cols` for one block, group by group (every value
/// written).
fn forward_block(
    g: &Geometry,
    (w, bias): (&[f32], Option<&[f32]>),
    cols: &[f32],
    target: &mut [f32],
    ld: usize,
) {
    let (kg, cog) = (g.k_group(), g.co_group());
    if let Some(bv) = bias {
        for (plane, b) in target.chunks_exact_mut(ld).zip(bv) {
            plane.fill(*b);
        }
    }
    for grp in 0..g.groups {
        gemm(
            rm_mut(target, grp * cog * ld, (cog, ld), ld),
            bias.is_some(),
            rm(w, grp * cog * kg, (cog, kg), kg),
            rm(cols, grp * kg * ld, (kg, ld), ld),
        );
    }
}

/// The weight gradient `[C_out, C_in/G, k_h, k_w]`. Runs of at most one block and at
/// least `min(batch, 8)` of them keep the threads busy; adding the partials costs
/// `C_out·K` per run against `C_out·K·len·P` for the run's product.
pub(crate) fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let run_len = g.block().min(g.batch.div_ceil(8));
    let partial: Vec<Vec<f32>> = batch_runs(g.batch, run_len)
        .into_par_iter()
        .map(|run| weight_grad_run(g, x, dy, run))
        .collect();
    let mut parts = partial.into_iter();
    let mut total = parts
        .next()
        .unwrap_or_else(|| vec![0.0; g.c_out * g.k_group()]);
    for part in parts {
        total.iter_mut().zip(part).for_each(|(t, v)| *t += v);
    }
    total
}

/// One run's `Σ dY[g] · cols[g]ᵀ`, `[C_out, K]` per group.
fn weight_grad_run(g: &Geometry, x: &[f32], dy: &[f32], run: std::ops::Range<usize>) -> Vec<f32> {
    let (p, kg, cog) = (g.p(), g.k_group(), g.co_group());
    let (out_img, nb) = (g.out_img(), g.block().min(run.len()));
    let mut acc = vec![0.0f32; g.c_out * kg];
    let block = if nb > 1 { g.c_out * nb * p } else { 0 };
    with_scratch(g.groups * kg * nb * p, block, |cols, buf| {
        for (count, first) in run.clone().step_by(nb).enumerate() {
            let imgs = nb.min(run.end - first);
            let ld = imgs * p;
            block_cols(g, x, first, imgs, cols);
            // dY of the block as [C_out, imgs·P] (one image's already is).
            let lhs: &[f32] = if imgs == 1 {
                &dy[first * out_img..(first + 1) * out_img]
            } else {
                for b in 0..imgs {
                    let img = &dy[(first + b) * out_img..][..out_img];
                    for (co, plane) in img.chunks_exact(p).enumerate() {
                        buf[co * ld + b * p..][..p].copy_from_slice(plane);
                    }
                }
                &buf[..g.c_out * ld]
            };
            for grp in 0..g.groups {
                gemm(
                    rm_mut(&mut acc, grp * cog * kg, (cog, kg), kg),
                    count > 0,
                    rm(lhs, grp * cog * ld, (cog, ld), ld),
                    rm(cols, grp * kg * ld, (kg, ld), ld).transpose(),
                );
            }
        }
    });
    acc
}

/// The input gradient `[N, C_in, H, W]`.
pub(crate) fn x_grad(g: &Geometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    if let Some(dx) = x_grad_as_conv(g, w, dy) {
        return dx;
    }
    let (p, kg, cog) = (g.p(), g.k_group(), g.co_group());
    let (x_img, out_img, nb) = (g.x_img(), g.out_img(), g.block());
    let mut dx = vec![0.0f32; g.batch * x_img];
    dx.par_chunks_mut(nb * x_img.max(1))
        .enumerate()
        .for_each(|(r, dxr)| {
            with_scratch(g.groups * kg * p, 0, |cols, _| {
                for (b, img) in dxr.chunks_exact_mut(x_img).enumerate() {
                    let n = r * nb + b;
                    for grp in 0..g.groups {
                        // cols[grp]: [kg, P] = W[grp]ᵀ: [kg, cog] · dY_n[grp]: [cog, P]
                        gemm(
                            rm_mut(cols, grp * kg * p, (kg, p), p),
                            false,
                            rm(w, grp * cog * kg, (cog, kg), kg).transpose(),
                            rm(dy, n * out_img + grp * cog * p, (cog, p), p),
                        );
                    }
                    col2im(g, cols, img);
                }
            });
        });
    dx
}

/// `W'[C_in, C_out, k_h, k_w]`: the kernel with in and out channels swapped and both
/// spatial axes reversed (one group). With stride 1, the input gradient is the
/// convolution of the output gradient with `W'`.
fn flipped(g: &Geometry, w: &[f32]) -> Vec<f32> {
    let taps = g.kh * g.kw;
    let mut out = vec![0.0f32; w.len()];
    for o in 0..g.c_out {
        for c in 0..g.c_in {
            let src = &w[(o * g.c_in + c) * taps..][..taps];
            let dst = &mut out[(c * g.c_out + o) * taps..][..taps];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    out
}

/// The input gradient as a forward convolution of `dy` (stride 1, one group, and the
/// padding before each axis at most the dilated kernel's reach), if it applies.
fn x_grad_as_conv(g: &Geometry, w: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    let reach = [g.dilation[0] * (g.kh - 1), g.dilation[1] * (g.kw - 1)];
    if g.groups != 1 || g.stride != [1, 1] || g.pad[0] > reach[0] || g.pad[1] > reach[1] {
        return None;
    }
    let t = Geometry {
        c_in: g.c_out,
        h: g.oh,
        w: g.ow,
        c_out: g.c_in,
        oh: g.h,
        ow: g.w,
        pad: [reach[0] - g.pad[0], reach[1] - g.pad[1]],
        ..*g
    };
    Some(forward(&t, dy, &flipped(g, w), None))
}

/// The bias gradient `[C_out]`: per channel, the sum over images and positions, each
/// plane summed in f32 lanes and the planes added in f64, in a fixed order.
pub(crate) fn bias_grad(g: &Geometry, dy: &[f32]) -> Vec<f32> {
    let (p, out_img) = (g.p(), g.out_img());
    (0..g.c_out)
        .into_par_iter()
        .map(|c| {
            let planes = (0..g.batch).map(|n| &dy[n * out_img + c * p..][..p]);
            planes
                .map(|v| crate::math::sum_lanes(v, |x| x))
                .sum::<f64>() as f32
        })
        .collect()
}
