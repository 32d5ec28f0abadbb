//! burn-flex's strided layouts, which the UNet's resampling and gradients rely on:
//! copying a view whose innermost stride is not 1 (a broadcast axis, a strided axis)
//! and a scalar operation on a non-contiguous view, against values computed by index.
//! (Written for scorelab's former burn-flex patch, item 8; they hold on the published
//! crate too.)

use burn::tensor::{Device, Tensor, TensorData};
use score_core::tensor::to_vec_f32;

fn iota(shape: [usize; 3], dev: &Device) -> Tensor<3> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
    Tensor::from_data(TensorData::new(v, shape), dev)
}

/// Nearest-neighbour upsampling as the UNet does it: `[b, c, h, 1, w, 1]` expanded
/// to `[…, 2, …, 2]` (two stride-0 axes, one innermost) and reshaped, which copies.
#[test]
fn expanded_view_copies_by_index() {
    let dev = Device::flex();
    let (c, h, w) = (3, 4, 5);
    let x = iota([c, h, w], &dev);
    let up: Tensor<3> = x
        .clone()
        .reshape([c, h, 1, w, 1])
        .expand([c, h, 2, w, 2])
        .reshape([c, 2 * h, 2 * w]);
    let (xs, us) = (to_vec_f32(x).unwrap(), to_vec_f32(up).unwrap());
    for k in 0..c {
        for i in 0..2 * h {
            for j in 0..2 * w {
                let want = xs[(k * h + i / 2) * w + j / 2];
                assert_eq!(us[(k * 2 * h + i) * 2 * w + j], want, "at ({k}, {i}, {j})");
            }
        }
    }
}

/// A view with a stride-2 innermost axis (every other column) and a transposed view,
/// each scaled: the result is contiguous and equals the scaled elements by index.
#[test]
fn scalar_op_on_strided_views() {
    let dev = Device::flex();
    let x = iota([2, 3, 8], &dev);
    let xs = to_vec_f32(x.clone()).unwrap();
    let every_other: Tensor<3> = x
        .clone()
        .reshape([2, 3, 4, 2])
        .narrow(3, 1, 1)
        .reshape([2, 3, 4]);
    let got = to_vec_f32(every_other.mul_scalar(3.0)).unwrap();
    for (k, v) in got.iter().enumerate() {
        assert_eq!(*v, xs[2 * k + 1] * 3.0, "every other, element {k}");
    }
    let t = x.swap_dims(0, 2); // [8, 3, 2]
    let got = to_vec_f32(t.add_scalar(1.5)).unwrap();
    for i in 0..8 {
        for j in 0..3 {
            for k in 0..2 {
                assert_eq!(got[(i * 3 + j) * 2 + k], xs[(k * 3 + j) * 8 + i] + 1.5);
            }
        }
    }
}
