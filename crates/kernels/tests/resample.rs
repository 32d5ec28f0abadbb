//! 2× upsampling and 2×2 average pooling (`scorelab_kernels::{upsample2x,
//! downsample2x}`) against values and gradients by index, and to the bit against the
//! composition they replaced (an expanded view; two means over inner axes).

mod common;

use burn::tensor::{Device, Tensor, TensorData};

fn wave(n: usize, seed: f64) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f64 * 0.7548 + seed).sin() * 1.3 + (i as f64 * 0.231).cos()) as f32)
        .collect()
}

fn t4(v: &[f32], s: [usize; 4], dev: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v.to_vec(), s), dev)
}

fn vals(t: Tensor<4>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

const S: [usize; 4] = [2, 3, 4, 6];

#[test]
fn upsampling_copies_each_value_into_its_block_and_sums_the_gradient() {
    check_upsampling(&Device::flex());
}

#[test]
fn pooling_averages_blocks_as_the_two_means_did_and_spreads_the_gradient() {
    check_pooling(&Device::flex());
}

/// The same two checks on wgpu (lavapipe without a GPU), where the calls take burn's
/// own operations.
#[cfg(feature = "wgpu")]
#[test]
fn on_wgpu_the_same_checks_hold() {
    let Some(dev) = common::wgpu_device() else {
        return;
    };
    check_upsampling(&dev);
    check_pooling(&dev);
}

fn check_upsampling(dev: &Device) {
    let dev = dev.clone().autodiff();
    let [n, c, h, w] = S;
    let xv = wave(n * c * h * w, 0.1);
    let x = t4(&xv, S, &dev).require_grad();
    let y = scorelab_kernels::upsample2x(x.clone());
    assert_eq!(y.dims(), [n, c, 2 * h, 2 * w]);
    let rv = wave(4 * xv.len(), 0.7);
    let g = (y.clone() * t4(&rv, [n, c, 2 * h, 2 * w], &dev))
        .sum()
        .backward();
    let (yv, gx) = (vals(y.inner()), vals(x.grad(&g).unwrap()));
    for p in 0..n * c {
        for i in 0..2 * h {
            for j in 0..2 * w {
                let k = (p * 2 * h + i) * 2 * w + j;
                assert_eq!(yv[k], xv[(p * h + i / 2) * w + j / 2], "y[{k}]");
            }
        }
        for i in 0..h {
            for j in 0..w {
                let r = |a: usize, b: usize| rv[(p * 2 * h + 2 * i + a) * 2 * w + 2 * j + b];
                let want = (r(0, 0) + r(0, 1)) + (r(1, 0) + r(1, 1));
                let got = gx[(p * h + i) * w + j];
                // Four terms summed in some order: within 3 roundings of their sum.
                let bound = 3.0
                    * f32::EPSILON
                    * (r(0, 0).abs() + r(0, 1).abs() + r(1, 0).abs() + r(1, 1).abs());
                assert!((got - want).abs() <= bound, "∂x: {got} vs {want}");
            }
        }
    }
}

/// Pooling's values against ((a + b) + (c + d))·¼ (to the bit: that is the kernel's
/// order, and the two means' on burn-flex), and its gradient, exact.
fn check_pooling(dev: &Device) {
    let dev = dev.clone().autodiff();
    let [n, c, h, w] = S;
    let xv = wave(n * c * h * w, 0.3);
    let x = t4(&xv, S, &dev).require_grad();
    let y = scorelab_kernels::downsample2x(x.clone());
    assert_eq!(y.dims(), [n, c, h / 2, w / 2]);
    let old = x
        .clone()
        .reshape([n, c, h / 2, 2, w / 2, 2])
        .mean_dim(5)
        .mean_dim(3)
        .reshape([n, c, h / 2, w / 2]);
    assert_eq!(
        vals(y.clone().inner()),
        vals(old.inner()),
        "bits of the old composition"
    );
    let yv = vals(y.clone().inner());
    for p in 0..n * c {
        for i in 0..h / 2 {
            for j in 0..w / 2 {
                let v = |a: usize, b: usize| xv[(p * h + 2 * i + a) * w + 2 * j + b];
                let want = ((v(0, 0) + v(0, 1)) + (v(1, 0) + v(1, 1))) * 0.25;
                assert_eq!(yv[(p * h / 2 + i) * w / 2 + j], want, "y by index");
            }
        }
    }
    let rv = wave(xv.len() / 4, 0.9);
    let g = (y * t4(&rv, [n, c, h / 2, w / 2], &dev)).sum().backward();
    let gx = vals(x.grad(&g).unwrap());
    for p in 0..n * c {
        for i in 0..h {
            for j in 0..w {
                let want = rv[(p * h / 2 + i / 2) * w / 2 + j / 2] * 0.25;
                assert_eq!(
                    gx[(p * h + i) * w + j],
                    want,
                    "∂x exact (a power-of-two scale)"
                );
            }
        }
    }
}

#[test]
fn other_devices_take_the_same_values_through_burn() {
    // f64 on burn-flex takes the composed path inside the kernel.
    let dev = Device::flex();
    let v: Vec<f64> = wave(2 * 4 * 6, 0.5).iter().map(|&x| x as f64).collect();
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(v.clone(), [1, 2, 4, 6]),
        (&dev, burn::tensor::DType::F64),
    );
    assert_eq!(x.dtype(), burn::tensor::DType::F64);
    let up = scorelab_kernels::upsample2x(x.clone())
        .into_data()
        .try_to_vec::<f64>()
        .unwrap();
    assert_eq!(up[0], v[0]);
    assert_eq!(up[1], v[0]);
    assert_eq!(up[12], v[0]);
    let down = scorelab_kernels::downsample2x(x)
        .into_data()
        .try_to_vec::<f64>()
        .unwrap();
    let want = ((v[0] + v[1]) + (v[6] + v[7])) * 0.25;
    assert!((down[0] - want).abs() <= 4.0 * f64::EPSILON * want.abs().max(1.0));
}
