//! The 2-D convolution of the kernels crate (`scorelab_kernels::conv2d`) and its three
//! gradients (input, weight, bias) through its autodiff node, against the definition
//! summed in f64; and the same cases through burn's own `conv2d`, the path the crate
//! takes on other backends and for other dtypes (f64 here).
//!
//! Cases cover what the NCHW kernels' index arithmetic distinguishes: the UNet's 3×3,
//! stride 1, padding 1; strides above 1 along both axes (the gathered column path);
//! dilation; asymmetric padding; groups; a 1×1 kernel; output rows wholly in the
//! padding; padding beyond the kernel's reach (the col2im scatter); maps large enough
//! for the NCHW forward pass; batches split into several runs.

mod common;

use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Tensor, TensorData};

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

/// Deterministic values in about [−2.3, 2.3], different per seed.
fn wave(n: usize, seed: f64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as f64 * 0.7548 + seed).sin() * 1.3 + (i as f64 * 0.231 + 2.0 * seed).cos()) as f32
        })
        .collect()
}

fn tensor<const D: usize>(v: &[f32], shape: [usize; D], dtype: DType, dev: &Device) -> Tensor<D> {
    let data = match dtype {
        DType::F64 => TensorData::new(v.iter().map(|&x| x as f64).collect::<Vec<_>>(), shape),
        _ => TensorData::new(v.to_vec(), shape),
    };
    let t = Tensor::from_data(data, (dev, dtype));
    assert_eq!(t.dtype(), dtype);
    t
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
}

/// Which convolution `check` runs.
#[derive(Clone, Copy)]
enum Path {
    /// `scorelab_kernels::conv2d` (f32: the crate's own kernels on burn-flex).
    Kernels,
    /// The same call on f64 tensors: burn's own convolution and gradients.
    KernelsF64,
    /// The same call on wgpu (f32): burn's own convolution on the `Cube` backend.
    #[cfg(feature = "wgpu")]
    Wgpu,
}

/// The output and the three gradients of Σ r·conv(x, w, b), as f64.
fn run(c: &Case, seed: u64, path: Path, bias: bool) -> ([Vec<f64>; 4], [Vec<f32>; 3], [usize; 2]) {
    let (dev, dtype) = match path {
        Path::Kernels => (Device::flex(), DType::F32),
        Path::KernelsF64 => (Device::flex(), DType::F64),
        #[cfg(feature = "wgpu")]
        Path::Wgpu => (common::wgpu_device().unwrap(), DType::F32),
    };
    let dev = dev.autodiff();
    let ws = [c.c_out, c.x[1] / c.groups, c.kernel[0], c.kernel[1]];
    let s = seed as f64;
    let xv = wave(c.x.iter().product(), s);
    let wv = wave(ws.iter().product(), s + 1.0);
    let bv = if bias {
        wave(c.c_out, s + 2.0)
    } else {
        vec![0.0; c.c_out]
    };
    let x = tensor(&xv, c.x, dtype, &dev).require_grad();
    let w = tensor(&wv, ws, dtype, &dev).require_grad();
    let b = tensor(&bv, [c.c_out], dtype, &dev).require_grad();
    let opts = ConvOptions::new_with_padding(c.stride, c.padding, c.dilation, c.groups);
    let y: Tensor<4> =
        scorelab_kernels::conv2d(x.clone(), w.clone(), bias.then(|| b.clone()), opts);
    let [_, _, oh, ow] = y.dims();
    let rv = wave(y.dims().iter().product(), s + 3.0);
    let r = tensor(&rv, y.dims(), dtype, &dev);
    let grads = (y.clone() * r).sum().backward();
    let got = [
        values(x.grad(&grads).unwrap()),
        values(w.grad(&grads).unwrap()),
        match bias {
            true => values(b.grad(&grads).unwrap()),
            false => vec![0.0; c.c_out],
        },
        values(y.inner()),
    ];
    (got, [xv, wv, rv], [oh, ow])
}

fn check(c: &Case, seed: u64) {
    for (path, bias) in [
        (Path::Kernels, true),
        (Path::Kernels, false),
        (Path::KernelsF64, true),
    ] {
        check_path(c, seed, path, bias);
    }
}

fn check_path(c: &Case, seed: u64, path: Path, bias: bool) {
    let (got, [xs, ws, rs], [oh, ow]) = run(c, seed, path, bias);
    let mut want = reference(c, &xs, &ws, &rs, [oh, ow]);
    // The forward output is the sum without bias plus the bias.
    let bv = if bias {
        wave(c.c_out, seed as f64 + 2.0)
    } else {
        vec![0.0; c.c_out]
    };
    let plane = oh * ow;
    for (k, (v, a)) in want[3].0.iter_mut().zip(want[3].1.iter_mut()).enumerate() {
        let b = bv[(k / plane) % c.c_out] as f64;
        *v += b;
        *a += b.abs();
    }
    if !bias {
        want[2] = (vec![0.0; c.c_out], vec![0.0; c.c_out]);
    }
    // Each gradient element is a sum of at most T = N·OH·OW·C_out products of f32
    // values (an output element, of C_in/G·k_h·k_w + 1; T is the larger), accumulated
    // in f32 in some order: |error| ≤ T·u·Σ|term| with u = 2⁻²⁴, plus the final
    // rounding to f32 (u·|value|). Any wrong index or missing term is off by a whole
    // term, far above this. (f64 is held to the same bound, which it meets easily.)
    let terms =
        (c.x[0] * oh * ow * c.c_out).max(c.x[1] / c.groups * c.kernel[0] * c.kernel[1] + 1) as f64;
    let u = f64::from(f32::EPSILON) / 2.0;
    for (name, g, (v, abs)) in [
        ("input", &got[0], &want[0]),
        ("weight", &got[1], &want[1]),
        ("bias", &got[2], &want[2]),
        ("output", &got[3], &want[3]),
    ] {
        assert_eq!(g.len(), v.len(), "{name}: length");
        for (k, ((gv, rv), a)) in g.iter().zip(v).zip(abs).enumerate() {
            let bound = (terms + 1.0) * u * a + f64::MIN_POSITIVE;
            let err = (gv - rv).abs();
            assert!(
                err <= bound,
                "{name}[{k}]: {gv} vs {rv} (|Δ| {err:.3e} > bound {bound:.3e})"
            );
        }
    }
}

const UNET: Case = Case {
    x: [3, 5, 9, 8],
    c_out: 4,
    kernel: [3, 3],
    stride: [1, 1],
    padding: [(1, 1), (1, 1)],
    dilation: [1, 1],
    groups: 1,
};

const STRIDED: Case = Case {
    x: [2, 4, 9, 11],
    c_out: 6,
    kernel: [3, 2],
    stride: [2, 3],
    padding: [(2, 0), (0, 1)],
    dilation: [1, 2],
    groups: 2,
};

#[test]
fn unet_3x3_stride_1_padding_1() {
    check(&UNET, 1);
}

#[test]
fn strided_dilated_asymmetric_grouped() {
    check(&STRIDED, 2);
}

/// On wgpu (lavapipe without a GPU) the call takes burn's own convolution: the same
/// cases against the same definition and bound.
#[cfg(feature = "wgpu")]
#[test]
fn on_wgpu_the_same_cases_hold() {
    if common::wgpu_device().is_none() {
        return;
    }
    for (case, seed) in [(&UNET, 1), (&STRIDED, 2)] {
        check_path(case, seed, Path::Wgpu, true);
        check_path(case, seed, Path::Wgpu, false);
    }
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
/// the kernels' NCHW forward pass (`prefers_nchw`); smaller ones keep burn-flex's.
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

/// A batch of ten small maps: the weight gradient sums several runs of images and the
/// forward and input-gradient passes span several images per product.
#[test]
fn batches_split_into_runs_and_blocks() {
    check(
        &Case {
            x: [10, 6, 4, 5],
            c_out: 7,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [(1, 1), (1, 1)],
            dilation: [1, 1],
            groups: 1,
        },
        9,
    );
    check(
        &Case {
            x: [10, 6, 16, 16],
            c_out: 5,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [(1, 1), (1, 1)],
            dilation: [1, 1],
            groups: 1,
        },
        10,
    );
}

/// The output and all three gradients are the same bits on 1 and 3 threads, on shapes
/// where the runs of images and the blocks differ in number from the threads.
#[test]
fn the_kernels_do_not_depend_on_the_thread_count() {
    let cases = [
        Case {
            x: [11, 6, 5, 5],
            c_out: 6,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [(1, 1), (1, 1)],
            dilation: [1, 1],
            groups: 1,
        },
        Case {
            x: [9, 8, 17, 16],
            c_out: 4,
            kernel: [3, 3],
            stride: [2, 1],
            padding: [(1, 1), (1, 1)],
            dilation: [1, 1],
            groups: 2,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| run(c, 20 + i as u64, Path::Kernels, true).0)
        };
        assert_eq!(on(1), on(3), "case {i}");
    }
}

/// `conv2d_layer` takes burn-nn's `Conv2d` padding as its own `forward` does (`Same`
/// with an even kernel and stride 2 pads one more after; `Valid`; explicit and
/// asymmetric): same output shapes, and values within the two f32 sums' rounding,
/// 2·(K + 1)·u·K·max|x|·max|w| for K = C_in·k_h·k_w terms.
#[test]
fn conv2d_layer_pads_as_burn_nn_does() {
    use burn::nn::PaddingConfig2d as P;
    use burn::nn::conv::Conv2dConfig;
    let dev = Device::flex();
    for (i, (pad, kernel, stride)) in [
        (P::Same, [4, 3], [2, 2]),
        (P::Same, [3, 3], [1, 1]),
        (P::Valid, [3, 2], [1, 2]),
        (P::Explicit(2, 0, 1, 3), [3, 3], [1, 1]),
    ]
    .into_iter()
    .enumerate()
    {
        let layer = Conv2dConfig::new([6, 5], kernel)
            .with_stride(stride)
            .with_padding(pad)
            .init(&dev);
        let x = tensor(
            &wave(2 * 6 * 17 * 16, i as f64),
            [2, 6, 17, 16],
            DType::F32,
            &dev,
        );
        let want = layer.forward(x.clone());
        let got = scorelab_kernels::conv2d_layer(&layer, x.clone());
        assert_eq!(got.dims(), want.dims(), "case {i}");
        let k = (6 * kernel[0] * kernel[1]) as f64;
        let mx = values(x.abs().max());
        let mw = values(layer.weight.val().abs().max());
        let u = f64::from(f32::EPSILON) / 2.0;
        let bound = 2.0 * (k + 1.0) * u * k * mx[0] * mw[0];
        for (a, b) in values(got).iter().zip(values(want)) {
            assert!(
                (a - b).abs() <= bound,
                "case {i}: {a} vs {b} (bound {bound:.2e})"
            );
        }
    }
}
