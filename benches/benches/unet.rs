//! One UNet training step and one denoiser evaluation at the demo's size
//! (28×28×1, widths 16/32/32, training batch 32, sampling batch 64).

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use score_core::tensor::{randn, stream_rng, tensor1};
use score_core::{Denoiser, Precond};
use score_nn::Preconditioned;
use score_nn::precond::denoising_loss;
use score_train::pipeline::demo_unet_config;

fn unet(c: &mut Criterion) {
    let mut g = c.benchmark_group("unet-demo");
    g.sample_size(10);
    let precond = Precond::edm(0.5);

    let dev = Device::flex().autodiff();
    dev.seed(0);
    let mut net = demo_unet_config().init(&dev);
    let mut optim = AdamConfig::new().init();
    let mut rng = stream_rng(0, 0, 0);
    let x0 = randn([32, 1, 28, 28], &mut rng, &dev);
    let noise = randn([32, 1, 28, 28], &mut rng, &dev);
    let sig: Vec<f64> = (0..32).map(|i| 0.01 * 1.3f64.powi(i)).collect();
    let sigma = tensor1(&sig, &dev);
    g.bench_function("train_step_batch32", |b| {
        b.iter(|| {
            let loss = denoising_loss(
                &net,
                &precond,
                x0.clone(),
                sigma.clone(),
                noise.clone(),
                None,
            )
            .mean();
            let _ = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(1e-4, net.clone(), grads);
        })
    });

    let inf = Device::flex();
    let net = demo_unet_config().init(&inf);
    let x = randn([64, 1, 28, 28], &mut rng, &inf);
    let s = tensor1(&[1.0; 64], &inf);
    let den = Preconditioned::new(&net, precond);
    g.bench_function("denoise_eval_batch64", |b| {
        b.iter(|| {
            let out = den.denoise(x.clone(), s.clone(), None);
            let _ = score_core::tensor::to_vec_f32(out).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, unet);
criterion_main!(benches);
