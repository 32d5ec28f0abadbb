//! `cargo run -p scorelab-kernels --example gn_fwd [-- N C H GROUPS REPS]`: the fused
//! GroupNorm forward alone, without autodiff (inference), median of REPS.

use burn::tensor::{Device, Distribution, Tensor};
use std::time::Instant;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let [n, c, h, groups, reps] =
        [0, 1, 2, 3, 4].map(|i| a.get(i).copied().unwrap_or([32, 64, 32, 8, 200][i]));
    let dev = Device::flex();
    let x = Tensor::<4>::random([n, c, h, h], Distribution::Normal(1.0, 2.0), &dev);
    let (g, b) = (Tensor::<1>::ones([c], &dev), Tensor::<1>::zeros([c], &dev));
    let mut t = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        let y =
            scorelab_kernels::group_norm_act(x.clone(), g.clone(), b.clone(), groups, 1e-5, false);
        let _ = y.narrow(0, 0, 1).into_data();
        t.push(t0.elapsed().as_secs_f64());
    }
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "[{n}, {c}, {h}, {h}] groups {groups}: forward {:.3} ms",
        t[t.len() / 2] * 1e3
    );
}
