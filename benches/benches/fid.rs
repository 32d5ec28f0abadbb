//! The FID Inception-v3 forward pass at batch 16 (input already at 299×299), and the
//! 28×28 → 299×299 preprocessing of 16 Fashion-MNIST-sized images. Needs
//! `cargo xtask fid-setup`. Side by side with torch: `benches/torch/compare_fid.sh`.

use burn::tensor::{Device, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use score_eval::fid::{self, FidInception, SIZE};

fn inception(c: &mut Criterion) {
    let dev = Device::flex();
    let net = FidInception::load_default(&dev).unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("fid-inception");
    g.sample_size(10);
    let bytes: Vec<u8> = (0..16 * 28 * 28).map(|i| (i * 37 % 256) as u8).collect();
    g.bench_function("preprocess_16x28x28", |b| {
        b.iter(|| fid::preprocess(&bytes, [16, 1, 28, 28]).unwrap())
    });
    g.bench_function("features_batch16", |b| {
        b.iter(|| net.features(&bytes, [16, 1, 28, 28], 16, |_| {}).unwrap())
    });
    let x = fid::preprocess(&bytes, [16, 1, 28, 28]).unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(x, [16, 3, SIZE, SIZE]), &dev);
    let raw = fid::InceptionV3::from_layers(&[], &dev).is_err();
    assert!(raw, "an empty layer list must be refused");
    g.bench_function("forward_batch16", |b| {
        b.iter(|| {
            let _ = net.forward(x.clone()).into_data();
        })
    });
    g.finish();
}

criterion_group!(benches, inception);
criterion_main!(benches);
