//! The generator gradient of score distillation, in one place.
//!
//! For x₀ = G_η(z) and x_σ = x₀ + σn, score distillation (Diff-Instruct / VSD / DMD)
//! moves η along −E[w(σ)(s_fake(x_σ) − s_target(x_σ))·∂x_σ/∂η]. With Tweedie,
//! σ²(s_fake − s_target) = D_fake − D_target, so the per-element pseudo-gradient on x₀ is
//!
//! - VSD with w(σ) = σ²: g = D_fake − D_target;
//! - DMD2: g = (D_fake − D_target)/mean|x₀ − D_target|, the mean over each sample's
//!   elements (DMD2's `(p_real − p_fake)/|p_real|.mean()` with p = x₀ − D), i.e. the
//!   VSD gradient with w(σ) = σ²/mean|x₀ − D_target|.
//!
//! The loss ½·mean((x₀ − stopgrad(x₀ − g))²) over every element (DMD2's `mse_loss`)
//! has gradient g/numel with respect to x₀, so back-propagating it through G applies g.

use burn::tensor::Tensor;

use crate::config::GradientForm;

/// The pseudo-gradient g on x₀ (`[B, …]`) from the target's and the fake score's
/// denoised estimates at x_σ. No autodiff: pass plain tensors.
pub fn pseudo_gradient<const D: usize>(
    form: GradientForm,
    x0: Tensor<D>,
    d_target: Tensor<D>,
    d_fake: Tensor<D>,
) -> Tensor<D> {
    let diff = d_fake - d_target.clone();
    match form {
        GradientForm::Vsd => diff,
        GradientForm::Dmd2 => {
            let b = x0.dims()[0];
            let scale: Tensor<2> = (x0 - d_target)
                .abs()
                .reshape([b as i64, -1])
                .mean_dim(1)
                // A sample with x₀ = D_target exactly has no direction to move; DMD2
                // turns the 0/0 into 0 (`nan_to_num`), this floor does the same.
                .clamp_min(1e-12);
            diff / score_core::tensor::per_sample::<D>(scale.reshape([b]))
        }
    }
}

/// The surrogate loss ½·mean((x₀ − stopgrad(x₀ − g))²) whose gradient through the
/// generator is g/numel on x₀. `x0` carries the generator's graph; `g` is a plain tensor.
pub fn surrogate_loss<const D: usize>(x0: Tensor<D>, g: Tensor<D>) -> Tensor<1> {
    let device = x0.device();
    let target = (x0.clone().without_autodiff() - g)
        .to_device(&device)
        .detach();
    (x0 - target).powi_scalar(2).mean().mul_scalar(0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use score_core::tensor::{from_f64, to_vec_f64};

    /// A case by hand: two 2-D samples. Sample 0: x₀ = (1, 3), D_target = (0, 1),
    /// D_fake = (2, 2): D_fake − D_target = (2, 1), mean|x₀ − D_target| = (1 + 2)/2 =
    /// 1.5, so DMD2's g = (4/3, 2/3) and VSD's g = (2, 1). Sample 1: x₀ = (0, 0),
    /// D_target = (−2, 2), D_fake = (−1, 0): difference (1, −2), mean |·| = 2,
    /// DMD2's g = (0.5, −1).
    #[test]
    fn dmd2_is_vsd_divided_by_the_mean_residual() {
        let dev = Device::flex();
        let t = |v: &[f64]| from_f64(v, [2, 2], &dev);
        let (x0, dt, df) = (
            t(&[1.0, 3.0, 0.0, 0.0]),
            t(&[0.0, 1.0, -2.0, 2.0]),
            t(&[2.0, 2.0, -1.0, 0.0]),
        );
        let vsd = to_vec_f64(pseudo_gradient(
            GradientForm::Vsd,
            x0.clone(),
            dt.clone(),
            df.clone(),
        ))
        .unwrap();
        let dmd = to_vec_f64(pseudo_gradient(GradientForm::Dmd2, x0, dt, df)).unwrap();
        let want_vsd = [2.0, 1.0, 1.0, -2.0];
        let want_dmd = [4.0 / 3.0, 2.0 / 3.0, 0.5, -1.0];
        // float32: each value to 2 ulps of its magnitude (≤ 2).
        for i in 0..4 {
            assert!((vsd[i] - want_vsd[i]).abs() < 5e-7, "{vsd:?}");
            assert!((dmd[i] - want_dmd[i]).abs() < 5e-7, "{dmd:?}");
        }
    }

    /// The surrogate's gradient with respect to x₀ is g/numel.
    #[test]
    fn surrogate_loss_back_propagates_g_over_numel() {
        let dev = Device::flex().autodiff();
        let x0 = from_f64(&[1.0, -2.0, 0.5, 4.0, 0.0, 3.0], [2, 3], &dev).require_grad();
        let g = from_f64(&[0.3, -1.2, 2.0, 0.0, 6.0, -0.6], [2, 3], &Device::flex());
        let loss = surrogate_loss(x0.clone(), g.clone());
        // Its value is ½·mean(g²).
        let gv = to_vec_f64(g).unwrap();
        let want_loss = 0.5 * gv.iter().map(|v| v * v).sum::<f64>() / 6.0;
        let got_loss = to_vec_f64(loss.clone()).unwrap()[0];
        assert!(
            (got_loss - want_loss).abs() < 1e-6 * want_loss,
            "{got_loss}"
        );
        let grads = loss.backward();
        let dx = to_vec_f64(x0.grad(&grads).unwrap()).unwrap();
        for (d, g) in dx.iter().zip(&gv) {
            assert!((d - g / 6.0).abs() < 1e-7, "{dx:?}");
        }
    }
}
