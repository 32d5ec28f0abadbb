//! The kernels of the burn-flex patch (`patches/burn-flex/PATCH.md`, issue 11), each
//! beside the generic path it replaces, at the shape of the table
//! ([32, 64, 32, 32], 8 groups):
//! - GroupNorm: `score_core::nn::norm::group_norm` (one fused `batch_norm_train`)
//!   against burn-nn's `GroupNorm::forward` (composed tensor operations), forward and
//!   forward + backward;
//! - SiLU's sigmoid: `activation::sigmoid` (the patched, vectorised kernel) against
//!   the same function composed from burn's `exp`, `add` and `recip`.

use burn::nn::GroupNormConfig;
use burn::tensor::{Device, Tensor, activation::sigmoid};
use criterion::{Criterion, criterion_group, criterion_main};
use score_core::nn::norm::group_norm;
use score_core::tensor::{randn, stream_rng, to_vec_f32};

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
        g.bench_function(format!("burn_nn_{name}"), |b| {
            b.iter(|| step(gn.forward(x.clone())))
        });
    }
    g.finish();
}

fn sigmoids(c: &mut Criterion) {
    let mut g = c.benchmark_group("sigmoid-2M");
    g.sample_size(20);
    let dev = Device::flex();
    let x = randn([32, 64, 32, 32], &mut stream_rng(1, 0, 0), &dev);
    g.bench_function("patched", |b| b.iter(|| done(sigmoid(x.clone()))));
    g.bench_function("composed", |b| {
        b.iter(|| done(x.clone().neg().exp().add_scalar(1.0).recip()))
    });
    g.finish();
}

criterion_group!(benches, groupnorm, sigmoids);
criterion_main!(benches);
