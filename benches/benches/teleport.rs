//! Teleport cost versus the Heun steps it replaces, at the demo's size: the closed-form
//! Gaussian solution for 64 images of 784 pixels (full-rank Gaussian of the demo's
//! training images) against one Heun step (two denoiser evaluations) of the demo UNet.

use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use gaussian_score::GaussianScore;
use gaussian_score::teleport::teleport_state;
use score_core::Precond;
use score_core::samplers::{HeunOptions, SampleContext, heun_sample};
use score_core::sigmas::karras_sigmas;
use score_core::tensor::{randn, stream_rng};
use score_nn::Preconditioned;
use score_train::pipeline::{demo_split, demo_unet_config};

fn teleport(c: &mut Criterion) {
    let mut g = c.benchmark_group("teleport-vs-heun");
    g.sample_size(10);
    let dev = Device::flex();
    let (train, _) = demo_split().expect("shipped data");
    let gauss = GaussianScore::fit(
        score_core::array::rows_of(train.rows_f64(), 784).view(),
        None,
    )
    .expect("fit");
    let sigmas = karras_sigmas(18, 0.002, 80.0, 7.0).expect("grid");
    let x = randn([64, 1, 28, 28], &mut stream_rng(0, 0, 0), &dev).mul_scalar(80.0);
    g.bench_function("closed_form_teleport_batch64", |b| {
        b.iter(|| teleport_state(&gauss, x.clone(), 80.0, sigmas[6]).expect("teleport"))
    });
    let net = demo_unet_config().init(&dev);
    let den = Preconditioned::new(&net, Precond::edm(0.5));
    let grid = &sigmas[..2];
    g.bench_function("one_heun_step_batch64", |b| {
        b.iter(|| {
            let out = heun_sample(
                &den,
                grid,
                x.clone(),
                &HeunOptions::default(),
                &mut SampleContext::new(),
            )
            .expect("step");
            score_core::tensor::to_vec_f32(out.x).expect("data")
        })
    });
    g.finish();
}

criterion_group!(benches, teleport);
criterion_main!(benches);
