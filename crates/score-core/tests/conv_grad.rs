//! The 2-D convolution and its gradients (input, weight, bias) through burn's autodiff
//! on burn-flex, whose patch computes them straight from NCHW
//! (`patches/burn-flex/src/ops/conv_grad.rs`), against the definition summed in f64.
//!
//! Cases cover what the patch's index arithmetic distinguishes: the UNet's 3×3, stride
//! 1, padding 1; strides above 1 along both axes (the non-contiguous column path);
//! dilation; asymmetric padding; groups; a 1×1 kernel.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use score_core::tensor::{randn, stream_rng, to_vec_f32};

struct Case {
    x: [usize; 4],
    c_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
    dilation: [usize; 2],
    groups: usize,
}

/// Input index along one axis for output `o` and tap `t`, if inside `[0, len)`.
fn src(o: usize, t: usize, stride: usize, dil: usize, pad: usize, len: usize) -> Option<usize> {
    let i = (o * stride + t * dil).checked_sub(pad)?;
    (i < len).then_some(i)
}

/// Gradients of Σ r·conv(x, w, b) by the definition, in f64, with Σ|term| per element
/// (for the rounding bound).
#[allow(clippy::type_complexity)]
fn reference(
    c: &Case,
    x: &[f32],
    w: &[f32],
    r: &[f32],
    out: [usize; 2],
) -> [(Vec<f64>, Vec<f64>); 4] {
    let [n, ci, h, wd] = c.x;
    let (co, [kh, kw], g) = (c.c_out, c.kernel, c.groups);
    let (cpg, copg) = (ci / g, co / g);
    let mut dx = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let mut dw = (vec![0.0; w.len()], vec![0.0; w.len()]);
    let mut db = (vec![0.0; co], vec![0.0; co]);
    let mut yo = (vec![0.0; r.len()], vec![0.0; r.len()]);
    for b in 0..n {
        for o in 0..co {
            let grp = o / copg;
            for oh in 0..out[0] {
                for ow in 0..out[1] {
                    let yi = ((b * co + o) * out[0] + oh) * out[1] + ow;
                    let rv = r[yi] as f64;
                    db.0[o] += rv;
                    db.1[o] += rv.abs();
                    for cl in 0..cpg {
                        let cin = grp * cpg + cl;
                        for i in 0..kh {
                            let Some(y) = src(oh, i, c.stride[0], c.dilation[0], c.padding[0].0, h)
                            else {
                                continue;
                            };
                            for j in 0..kw {
                                let Some(z) =
                                    src(ow, j, c.stride[1], c.dilation[1], c.padding[1].0, wd)
                                else {
                                    continue;
                                };
                                let xi = ((b * ci + cin) * h + y) * wd + z;
                                let wi = ((o * cpg + cl) * kh + i) * kw + j;
                                let (tw, tx) = (rv * x[xi] as f64, rv * w[wi] as f64);
                                dw.0[wi] += tw;
                                dw.1[wi] += tw.abs();
                                dx.0[xi] += tx;
                                dx.1[xi] += tx.abs();
                                let ty = x[xi] as f64 * w[wi] as f64;
                                yo.0[yi] += ty;
                                yo.1[yi] += ty.abs();
                            }
                        }
                    }
                }
            }
        }
    }
    [dx, dw, db, yo]
}

fn check(c: &Case, seed: u64) {
    let dev = Device::flex().autodiff();
    let mut rng = stream_rng(seed, 0xc0, 0);
    let x = randn(c.x, &mut rng, &dev).require_grad();
    let w = randn(
        [c.c_out, c.x[1] / c.groups, c.kernel[0], c.kernel[1]],
        &mut rng,
        &dev,
    )
    .require_grad();
    let b = randn([c.c_out], &mut rng, &dev).require_grad();
    let opts = ConvOptions::new_with_padding(c.stride, c.padding, c.dilation, c.groups);
    let y: Tensor<4> = conv2d(x.clone(), w.clone(), Some(b.clone()), opts);
    let [_, _, oh, ow] = y.dims();
    let y_got = to_vec_f32(y.clone().inner()).unwrap();
    let r = randn(y.dims(), &mut rng, &dev);
    let grads = (y * r.clone()).sum().backward();
    let got = [
        to_vec_f32(x.grad(&grads).unwrap()).unwrap(),
        to_vec_f32(w.grad(&grads).unwrap()).unwrap(),
        to_vec_f32(b.grad(&grads).unwrap()).unwrap(),
    ];
    let (xs, ws, rs) = (
        to_vec_f32(x.inner()).unwrap(),
        to_vec_f32(w.inner()).unwrap(),
        to_vec_f32(r.inner()).unwrap(),
    );
    let mut want = reference(c, &xs, &ws, &rs, [oh, ow]);
    // The forward output is the sum without bias plus the bias.
    let bias = to_vec_f32(b.inner()).unwrap();
    let plane = oh * ow;
    for (k, (v, a)) in want[3].0.iter_mut().zip(want[3].1.iter_mut()).enumerate() {
        let bv = bias[(k / plane) % c.c_out] as f64;
        *v += bv;
        *a += bv.abs();
    }
    // Each gradient element is a sum of at most T = N·OH·OW·C_out products of f32
    // values (an output element, of C_in/G·k_h·k_w + 1; T is the larger), accumulated in f32 in some order: |error| ≤ T·u·Σ|term| with u = 2⁻²⁴,
    // plus the final rounding to f32 (u·|value|). Any wrong index or missing term is
    // off by a whole term, far above this.
    let terms =
        (c.x[0] * oh * ow * c.c_out).max(c.x[1] / c.groups * c.kernel[0] * c.kernel[1] + 1) as f64;
    let u = f64::from(f32::EPSILON) / 2.0;
    for (name, g, (v, abs)) in [
        ("input", &got[0], &want[0]),
        ("weight", &got[1], &want[1]),
        ("bias", &got[2], &want[2]),
        ("output", &y_got, &want[3]),
    ] {
        assert_eq!(g.len(), v.len(), "{name}: length");
        for (k, ((gv, rv), a)) in g.iter().zip(v).zip(abs).enumerate() {
            let bound = (terms + 1.0) * u * a + f64::MIN_POSITIVE;
            let err = (*gv as f64 - rv).abs();
            assert!(
                err <= bound,
                "{name}[{k}]: {gv} vs {rv} (|Δ| {err:.3e} > bound {bound:.3e})"
            );
        }
    }
}

#[test]
fn unet_3x3_stride_1_padding_1() {
    check(
        &Case {
            x: [3, 5, 9, 8],
            c_out: 4,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [(1, 1), (1, 1)],
            dilation: [1, 1],
            groups: 1,
        },
        1,
    );
}

#[test]
fn strided_dilated_asymmetric_grouped() {
    check(
        &Case {
            x: [2, 4, 9, 11],
            c_out: 6,
            kernel: [3, 2],
            stride: [2, 3],
            padding: [(2, 0), (0, 1)],
            dilation: [1, 2],
            groups: 2,
        },
        2,
    );
}

#[test]
fn one_by_one_and_unit_width_stride_with_dilation() {
    check(
        &Case {
            x: [2, 3, 5, 6],
            c_out: 2,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [(0, 0), (0, 0)],
            dilation: [1, 1],
            groups: 1,
        },
        3,
    );
    check(
        &Case {
            x: [1, 2, 7, 7],
            c_out: 3,
            kernel: [2, 3],
            stride: [2, 1],
            padding: [(1, 1), (2, 1)],
            dilation: [2, 2],
            groups: 1,
        },
        4,
    );
}

#[test]
fn same_width_rows_in_the_padding_and_the_column_fallback() {
    // Stride 1 and as wide as the input: the contiguous-copy path, with output rows
    // lying wholly in the padding (OH = H + 3).
    check(
        &Case {
            x: [3, 3, 5, 6],
            c_out: 4,
            kernel: [2, 3],
            stride: [1, 1],
            padding: [(2, 2), (1, 1)],
            dilation: [1, 1],
            groups: 1,
        },
        5,
    );
    // Padding beyond the kernel's reach (3 > 1): the input gradient cannot be a
    // convolution and goes through the column scatter.
    check(
        &Case {
            x: [2, 2, 6, 5],
            c_out: 3,
            kernel: [2, 3],
            stride: [1, 1],
            padding: [(3, 0), (1, 1)],
            dilation: [1, 1],
            groups: 1,
        },
        6,
    );
}

/// Maps of at least 256 output positions and more than four channels per group take
/// the patch's NCHW forward path too (`prefers_nchw`); smaller ones keep burn-flex's.
#[test]
fn large_maps_take_the_nchw_forward() {
    check(
        &Case {
            x: [2, 6, 16, 17],
            c_out: 3,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [(1, 1), (1, 1)],
            dilation: [1, 1],
            groups: 1,
        },
        7,
    );
    check(
        &Case {
            x: [1, 10, 34, 33],
            c_out: 4,
            kernel: [3, 2],
            stride: [2, 2],
            padding: [(1, 0), (0, 1)],
            dilation: [1, 2],
            groups: 2,
        },
        8,
    );
}
