//! Sampling a one-step generator (a DisBack or score-distillation checkpoint): one
//! network evaluation from noise scaled to its σ_gen.

use std::time::Instant;

use burn::tensor::Device;
use score_core::tensor::{ensure_finite, from_f32, to_vec_f32};
use score_nn::ScoreNetwork;
use score_train::pipeline::LoadedModel;

use crate::error::{Result, invalid};
use crate::spec::{SampleReport, SampleSpec, initial_noise, write_samples};

/// What to change when a generator's output is not finite.
const ONE_STEP_HINT: &str = "a damaged generator checkpoint, or --noise far out of range";

/// `spec.n` samples of the one-step generator `model` at σ_gen.
pub(crate) fn sample(
    spec: &SampleSpec,
    model: &LoadedModel,
    precond: &score_core::Precond,
    sigma_gen: f64,
    trained_steps: usize,
    dev: &Device,
) -> Result<SampleReport> {
    if spec.teleport.is_some() || spec.class.is_some() || spec.guidance != 1.0 {
        return Err(invalid(format!(
            "--teleport/--class/--guidance: {} is a one-step generator (one network evaluation, unconditional)",
            spec.checkpoint.display()
        )));
    }
    if spec.sampler.is_some() || spec.grid.is_some() || spec.ems.is_some() {
        return Err(invalid(format!(
            "--sampler/--steps/--grid and the sampler options: {} is a one-step generator (one network evaluation from σ_gen = {sigma_gen}); they do not apply",
            spec.checkpoint.display()
        )));
    }
    let t0 = Instant::now();
    let (shape, values): (Vec<usize>, Vec<f32>) = match model {
        LoadedModel::Unet(net, [ch, h, w]) => {
            generate(spec, net, precond, sigma_gen, [spec.n, *ch, *h, *w], dev)?
        }
        LoadedModel::Mlp(net, d) => generate(spec, net, precond, sigma_gen, [spec.n, *d], dev)?,
    };
    std::fs::create_dir_all(&spec.out).map_err(|e| score_core::ScoreError::io(&spec.out, e))?;
    let png = match shape.as_slice() {
        [n, c, h, w] => Some(score_io::image::image_grid_png(
            &values,
            [*n, *c, *h, *w],
            (*n as f64).sqrt().ceil() as usize,
        )?),
        _ => None,
    };
    write_samples(&spec.out, &shape, &values, png.as_deref())?;
    Ok(SampleReport {
        checkpoint: spec.checkpoint.clone(),
        trained_steps,
        sampler: "one-step".into(),
        steps: 0,
        nfe: 1,
        calibration_nfe: 0,
        network_calls: 1,
        teleport_skip: None,
        sigma_gen: Some(sigma_gen),
        n: spec.n,
        seconds: t0.elapsed().as_secs_f64(),
        out: spec.out.clone(),
        per_image: None,
    })
}

/// One evaluation of the generator `net` on the run's initial noise of `shape`: the
/// samples' shape and values, refused when not finite.
fn generate<const D: usize, N: ScoreNetwork<D>>(
    spec: &SampleSpec,
    net: &N,
    precond: &score_core::Precond,
    sigma_gen: f64,
    shape: [usize; D],
    dev: &Device,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let noise = initial_noise(spec.noise.as_deref(), &shape, spec.seed, dev)?;
    let x = disback::teacher::generate(net, precond, sigma_gen, from_f32(noise, shape, dev));
    ensure_finite(&x, "one-step generator", ONE_STEP_HINT)?;
    Ok((shape.to_vec(), to_vec_f32(x)?))
}
