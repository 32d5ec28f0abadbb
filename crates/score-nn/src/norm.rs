//! GroupNorm, its affine and (optionally) the SiLU after it. On burn-flex the three
//! are one operation and one autodiff node: `scorelab_kernels::group_norm_act`, our
//! own kernel crate's backend extension. On other backends, two operations: the
//! statistics of each (item, group) through burn's `batch_norm_train`, then the
//! per-channel affine as a broadcast multiply and add (and SiLU after it).
//!
//! burn-nn's `GroupNorm::forward` composes about seven whole-tensor operations (mean,
//! centre, square, mean, divide, scale, shift), and autodiff records each. Reshaping
//! `[N, C, …]` to `[1, N·G, C/G·…]` makes each (item, group) a batch-norm channel, so
//! `batch_norm_train` computes exactly GroupNorm's statistics (biased variance, ε inside
//! the square root) and autodiff differentiates it as one node.

use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::module::batch_norm_train;
use burn::tensor::{Device, Tensor};

/// A GroupNorm layer over `ch` channels with the most groups, at most `groups`, that
/// divide `ch` (at least one).
pub fn group_norm_layer(groups: usize, ch: usize, device: &Device) -> GroupNorm {
    let mut g = groups.min(ch).max(1);
    while !ch.is_multiple_of(g) {
        g -= 1;
    }
    GroupNormConfig::new(g, ch).init(device)
}

/// `norm.forward(x)`, computed as described in the module docs. Same parameters
/// (`gamma`, `beta`, `epsilon`, `affine`), same result up to f32 rounding.
pub fn group_norm<const D: usize>(norm: &GroupNorm, x: Tensor<D>) -> Tensor<D> {
    group_norm_act(norm, x, false)
}

/// `silu(norm.forward(x))`: GroupNorm and SiLU as one operation on burn-flex.
pub fn group_norm_silu<const D: usize>(norm: &GroupNorm, x: Tensor<D>) -> Tensor<D> {
    group_norm_act(norm, x, true)
}

fn group_norm_act<const D: usize>(norm: &GroupNorm, x: Tensor<D>, silu: bool) -> Tensor<D> {
    let affine = match (&norm.gamma, &norm.beta) {
        (Some(g), Some(b)) if norm.affine => Some((g.val(), b.val())),
        _ => None,
    };
    group_norm_act_with(x, norm.num_groups, norm.epsilon, affine, silu)
}

/// GroupNorm of `x` with `groups` groups and ε = `eps`, then the per-channel affine
/// (γ, β) when given: the computation of [`group_norm`] for layers that hold their
/// parameters themselves (EDM's `GroupNorm`, diffusers' `nn.GroupNorm`).
pub fn group_norm_with<const D: usize>(
    x: Tensor<D>,
    groups: usize,
    eps: f64,
    affine: Option<(Tensor<1>, Tensor<1>)>,
) -> Tensor<D> {
    group_norm_act_with(x, groups, eps, affine, false)
}

/// [`group_norm_with`], then SiLU when `silu`: on burn-flex (with or without autodiff)
/// one operation of the kernels crate; elsewhere [`composed_group_norm`] and SiLU.
pub fn group_norm_act_with<const D: usize>(
    x: Tensor<D>,
    groups: usize,
    eps: f64,
    affine: Option<(Tensor<1>, Tensor<1>)>,
    silu: bool,
) -> Tensor<D> {
    let device = x.device();
    if device.clone().inner() != Device::flex() {
        let y = composed_group_norm(x, groups, eps, affine);
        return if silu {
            burn::tensor::activation::silu(y)
        } else {
            y
        };
    }
    let c = x.dims()[1];
    let (gamma, beta) =
        affine.unwrap_or_else(|| (Tensor::ones([c], &device), Tensor::zeros([c], &device)));
    scorelab_kernels::group_norm_act(x, gamma, beta, groups, eps, silu)
}

/// SiLU, x·sigmoid(x): on burn-flex (with or without autodiff) the kernels crate's
/// one-pass operation and one-node backward; elsewhere burn's `silu`.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match x.device().inner() == Device::flex() {
        true => scorelab_kernels::silu(x),
        false => burn::tensor::activation::silu(x),
    }
}

/// GroupNorm as burn's `batch_norm_train` over `[1, N·G, …]` and a broadcast affine:
/// the path of backends without the kernel.
pub fn composed_group_norm<const D: usize>(
    x: Tensor<D>,
    groups: usize,
    eps: f64,
    affine: Option<(Tensor<1>, Tensor<1>)>,
) -> Tensor<D> {
    let dims = x.dims();
    let rows = dims[0] * groups;
    let per_row = dims.iter().product::<usize>() / rows.max(1);
    let device = x.device();
    let flat = x.reshape([1, rows, per_row]);
    let unit = Tensor::<1>::ones([rows], &device);
    let zero = Tensor::<1>::zeros([rows], &device);
    let y = batch_norm_train(flat, unit, zero, eps).output.reshape(dims);
    match affine {
        Some((g, b)) => {
            let mut per_channel = [1usize; D];
            per_channel[1] = dims[1];
            y * g.reshape(per_channel) + b.reshape(per_channel)
        }
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::GroupNormConfig;
    use burn::tensor::Device;
    use score_core::tensor::{randn, stream_rng, to_vec_f32};

    fn max_rel(a: &[f32], b: &[f32]) -> f64 {
        let scale = b
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs() as f64))
            .max(1e-30);
        a.iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()))
            / scale
    }

    /// Forward and gradients (input, γ, β) of the kernel (with and without SiLU) and of
    /// the composed path against burn-nn's composed GroupNorm, on a
    /// shape with two items, 4 groups of 3 channels and an offset mean (so centring
    /// matters). Both sides are f32 with different summation orders: the statistics
    /// of n = 3·5·7 = 105 values differ by at most about n·2^−24 ≈ 6e−6 relative in the
    /// worst case (and the fused side accumulates in f64), so 2e−5 of the largest
    /// value bounds every output and gradient; a wrong formula is off by O(1).
    #[test]
    fn matches_burn_group_norm_forward_and_backward() {
        let dev = Device::flex().autodiff();
        let mut rng = stream_rng(3, 0x6e, 0);
        let mut gn = GroupNormConfig::new(4, 12).init(&dev);
        let gamma = randn([12], &mut rng, &dev).add_scalar(1.0);
        let beta = randn([12], &mut rng, &dev);
        gn.gamma = Some(burn::module::Param::from_tensor(gamma));
        gn.beta = Some(burn::module::Param::from_tensor(beta));
        let x = randn([2, 12, 5, 7], &mut rng, &dev)
            .add_scalar(3.0)
            .require_grad();
        let w = randn([2, 12, 5, 7], &mut rng, &dev);
        let affine = || {
            Some((
                gn.gamma.as_ref().unwrap().val(),
                gn.beta.as_ref().unwrap().val(),
            ))
        };
        let run = |path: &str| {
            let y = match path {
                "kernel" => group_norm(&gn, x.clone()),
                "composed" => composed_group_norm(x.clone(), 4, gn.epsilon, affine()),
                "kernel + silu" => group_norm_silu(&gn, x.clone()),
                "burn + silu" => burn::tensor::activation::silu(gn.forward(x.clone())),
                _ => gn.forward(x.clone()),
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            let g = |t: Option<Tensor<1>>| to_vec_f32(t.unwrap()).unwrap();
            [
                to_vec_f32(y.inner()).unwrap(),
                to_vec_f32(x.grad(&grads).unwrap()).unwrap(),
                g(gn.gamma.as_ref().unwrap().grad(&grads)),
                g(gn.beta.as_ref().unwrap().grad(&grads)),
            ]
        };
        for (ours, theirs) in [
            ("kernel", "burn"),
            ("composed", "burn"),
            ("kernel + silu", "burn + silu"),
        ] {
            let (a, b) = (run(ours), run(theirs));
            for (what, u, v) in ["output", "d input", "d gamma", "d beta"]
                .iter()
                .zip(&a)
                .zip(&b)
                .map(|((w, u), v)| (w, u, v))
            {
                let e = max_rel(u, v);
                assert!(
                    e < 2e-5,
                    "{ours} vs {theirs}, {what}: max relative difference {e:.2e}"
                );
            }
        }
    }

    /// Batch norm proper (batch > 1, channels spread across items) against the closed
    /// form in f64: mean and biased variance over (batch, spatial) per channel.
    #[test]
    fn batch_norm_train_matches_the_closed_form() {
        let dev = Device::flex();
        let mut rng = stream_rng(4, 0x6e, 0);
        let x = randn([3, 2, 4], &mut rng, &dev)
            .mul_scalar(2.0)
            .add_scalar(-1.0);
        let gamma = randn([2], &mut rng, &dev);
        let beta = randn([2], &mut rng, &dev);
        let out = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5);
        let (xs, gs, bs) = (
            to_vec_f32(x).unwrap(),
            to_vec_f32(gamma).unwrap(),
            to_vec_f32(beta).unwrap(),
        );
        let ys = to_vec_f32(out.output).unwrap();
        let (ms, vs) = (
            to_vec_f32(out.mean).unwrap(),
            to_vec_f32(out.variance).unwrap(),
        );
        for c in 0..2 {
            let vals: Vec<f64> = (0..3)
                .flat_map(|b| (0..4).map(move |s| (b * 2 + c) * 4 + s))
                .map(|i| xs[i] as f64)
                .collect();
            let m = vals.iter().sum::<f64>() / 12.0;
            let v = vals.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 12.0;
            assert!((ms[c] as f64 - m).abs() < 1e-6 && (vs[c] as f64 - v).abs() < 1e-5);
            for b in 0..3 {
                for s in 0..4 {
                    let i = (b * 2 + c) * 4 + s;
                    let want = (xs[i] as f64 - m) / (v + 1e-5).sqrt() * gs[c] as f64 + bs[c] as f64;
                    assert!(
                        (ys[i] as f64 - want).abs() < 1e-5,
                        "y[{i}] {} vs {want}",
                        ys[i]
                    );
                }
            }
        }
    }
}
