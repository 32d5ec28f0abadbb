//! scorelab's kernels (`crates/kernels`), each beside the burn or burn-flex path it
//! replaces, at the shape of issue 11's table ([32, 64, 32, 32], 8 groups):
//! - GroupNorm: `score_nn::norm::group_norm` (the kernels crate's fused GroupNorm) and
//!   `group_norm_silu` (with SiLU, as the UNet uses it) against burn-nn's
//!   `GroupNorm::forward` (composed tensor operations), forward and forward + backward;
//! - SiLU: `score_nn::norm::silu` (the kernels crate's one-pass SiLU) against burn's
//!   `activation::silu` on burn-flex;
//! - the 3×3 convolutions of the UNet (16→16 at 28×28, 32→32 at 14×14 and 7×7, batch
//!   32): through burn's autodiff (forward; forward + input gradient; forward + weight
//!   gradient), and on burn-flex directly, each pass of the kernels crate's convolution
//!   (`ConvKernel for Flex`) beside burn-flex's own operation for it.

use burn::nn::GroupNormConfig;
use burn::tensor::{Device, Tensor, activation};
use criterion::{Criterion, criterion_group, criterion_main};
use score_core::tensor::{randn, stream_rng, to_vec_f32};
use score_nn::norm::{group_norm, group_norm_silu, silu};

fn done<const D: usize>(t: Tensor<D>) {
    let _ = to_vec_f32(t.flatten::<1>(0, D - 1).narrow(0, 0, 1)).unwrap();
}

fn groupnorm(c: &mut Criterion) {
    let mut g = c.benchmark_group("groupnorm-32x64x32x32");
    g.sample_size(20);
    let mut rng = stream_rng(0, 0, 0);
    for (name, dev) in [
        ("fwd", Device::flex()),
        ("fwd_bwd", Device::flex().autodiff()),
    ] {
        let gn = GroupNormConfig::new(8, 64).init(&dev);
        let x = randn([32, 64, 32, 32], &mut rng, &dev);
        let x = if name == "fwd" { x } else { x.require_grad() };
        let step = |y: Tensor<4>| {
            if name == "fwd" {
                done(y)
            } else if let Some(gx) = x.grad(&y.sum().backward()) {
                done(gx)
            }
        };
        g.bench_function(format!("fused_{name}"), |b| {
            b.iter(|| step(group_norm(&gn, x.clone())))
        });
        // The UNet's own use: GroupNorm then SiLU, one operation each way.
        g.bench_function(format!("fused_silu_{name}"), |b| {
            b.iter(|| step(group_norm_silu(&gn, x.clone())))
        });
        g.bench_function(format!("burn_nn_{name}"), |b| {
            b.iter(|| step(gn.forward(x.clone())))
        });
    }
    g.finish();
}

fn silus(c: &mut Criterion) {
    let mut g = c.benchmark_group("silu-2M");
    g.sample_size(20);
    let dev = Device::flex();
    let x = randn([32, 64, 32, 32], &mut stream_rng(1, 0, 0), &dev);
    g.bench_function("kernel", |b| b.iter(|| done(silu(x.clone()))));
    g.bench_function("burn", |b| b.iter(|| done(activation::silu(x.clone()))));
    g.finish();
}

criterion_group!(benches, groupnorm, silus, convs, conv_grads);
criterion_main!(benches);

/// The convolution on burn-flex directly: the kernels crate's passes
/// (`scorelab_kernels::conv::ConvKernel`) beside burn-flex's `ModuleOps` (`conv2d`,
/// `conv2d_x_backward`, `conv2d_weight_backward`, `conv2d_bias_backward`), at the
/// UNet's shapes.
fn conv_grads(c: &mut Criterion) {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::backend::ops::ModuleOps;
    use burn::tensor::TensorData;
    use burn::tensor::ops::ConvOptions;
    use scorelab_kernels::conv::ConvKernel;
    let mut g = c.benchmark_group("conv-grad-unet");
    g.sample_size(20);
    let mut rng = stream_rng(5, 0, 0);
    let mut flex = |shape: [usize; 4]| {
        let v = to_vec_f32(randn(shape, &mut rng, &Device::flex())).unwrap();
        FlexTensor::from_data(TensorData::new(v, shape))
    };
    for (ci, co, hw) in [(16, 16, 28), (32, 32, 14), (32, 32, 7)] {
        let (x, w, dy) = (
            flex([32, ci, hw, hw]),
            flex([co, ci, 3, 3]),
            flex([32, co, hw, hw]),
        );
        let o = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let bias = FlexTensor::from_data(TensorData::new(vec![0.5f32; co], [co]));
        let id = |what: &str| format!("{ci}to{co}_{hw}_{what}");
        g.bench_function(id("x_kernels"), |b| {
            b.iter(|| Flex::conv_x_grad(x.clone(), w.clone(), dy.clone(), o.clone()))
        });
        g.bench_function(id("x_burn_flex"), |b| {
            b.iter(|| Flex::conv2d_x_backward(x.clone(), w.clone(), dy.clone(), o.clone()))
        });
        g.bench_function(id("w_kernels"), |b| {
            b.iter(|| Flex::conv_weight_grad(x.clone(), w.clone(), dy.clone(), o.clone()))
        });
        g.bench_function(id("w_burn_flex"), |b| {
            b.iter(|| Flex::conv2d_weight_backward(x.clone(), w.clone(), dy.clone(), o.clone()))
        });
        g.bench_function(id("b_kernels"), |b| {
            b.iter(|| Flex::conv_bias_grad(x.clone(), bias.clone(), dy.clone()))
        });
        g.bench_function(id("b_burn_flex"), |b| {
            b.iter(|| Flex::conv2d_bias_backward(x.clone(), bias.clone(), dy.clone()))
        });
        g.bench_function(id("fwd_kernels"), |b| {
            b.iter(|| Flex::conv_forward(x.clone(), w.clone(), None, o.clone()))
        });
        g.bench_function(id("fwd_burn_flex"), |b| {
            b.iter(|| Flex::conv2d(x.clone(), w.clone(), None, o.clone()))
        });
    }
    g.finish();
}

fn convs(c: &mut Criterion) {
    use burn::module::Module;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    let mut g = c.benchmark_group("conv3x3-unet");
    g.sample_size(20);
    let mut rng = stream_rng(2, 0, 0);
    for (ci, co, hw) in [(16, 16, 28), (32, 32, 14)] {
        for mode in ["fwd", "xgrad", "wgrad"] {
            let dev = if mode == "fwd" {
                Device::flex()
            } else {
                Device::flex().autodiff()
            };
            let conv = Conv2dConfig::new([ci, co], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(&dev);
            let x = randn([32, ci, hw, hw], &mut rng, &dev);
            let x = if mode == "xgrad" { x.require_grad() } else { x };
            let conv = if mode == "xgrad" {
                conv.no_grad()
            } else {
                conv
            };
            g.bench_function(format!("{ci}to{co}_{hw}_{mode}"), |b| {
                b.iter(|| {
                    let y = scorelab_kernels::conv2d_layer(&conv, x.clone());
                    if mode == "fwd" {
                        done(y)
                    } else {
                        let gr = y.sum().backward();
                        if mode == "xgrad" {
                            done(x.grad(&gr).unwrap())
                        } else {
                            done(conv.weight.grad(&gr).unwrap())
                        }
                    }
                })
            });
        }
    }
    g.finish();
}
