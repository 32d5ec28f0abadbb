//! Sampling a checkpoint, as `scorelab sample` does: a one-step generator in one
//! evaluation; an MLP or image network with any registered sampler on a σ grid, with
//! classes and classifier-free guidance, or teleported from a Gaussian model (EDM or VP
//! coordinates); image by image in bounded memory ([`crate::per_image`]). Writes
//! `samples.npy` and `samples.png` as one unit.

use std::time::Instant;

use burn::tensor::Device;
use gaussian_score::GaussianScore;
use score_core::samplers::{SampleContext, SampleOutput, Sampler};
use score_core::tensor::{from_f32, from_f64, to_vec_f32};
use score_io::image::image_grid_png;
use score_nn::Preconditioned;
use score_nn::network::ImageNet;
use score_train::pipeline::{self, LoadedModel};

use crate::error::{Result, invalid};
use crate::spec::{
    SampleReport, SampleSpec, TeleportSpec, image_condition, initial_noise, write_samples,
};

/// Sample as `spec` says, reporting grid levels (or images, image by image) done to
/// `on_step(done, total)`.
pub fn sample(spec: &SampleSpec, dev: &Device, on_step: &dyn Fn(u64, u64)) -> Result<SampleReport> {
    let (model, precond, meta) = pipeline::load_model_weights(&spec.checkpoint, dev, spec.weights)?;
    check_counts(spec, &model)?;
    if let Some(sigma_gen) = pipeline::one_step_sigma(&spec.checkpoint, &meta)? {
        return crate::one_step::sample(spec, &model, &precond, sigma_gen, meta.step, dev);
    }
    let (sampler, grid) = (spec.sampler()?, spec.grid());
    let sigmas = grid.sigmas()?;
    check_ems(spec, &sampler, &sigmas)?;
    let mut report = SampleReport {
        checkpoint: spec.checkpoint.clone(),
        trained_steps: meta.step,
        sampler: sampler.name().to_string(),
        steps: grid.steps,
        nfe: 0,
        calibration_nfe: 0,
        network_calls: 0,
        teleport_skip: None,
        sigma_gen: None,
        n: spec.n,
        seconds: 0.0,
        out: spec.out.clone(),
        per_image: None,
    };
    let t0 = Instant::now();
    if let Some(batch) = spec.batch {
        let (done, nfe) =
            crate::per_image::sample(spec, &model, precond, &sigmas, batch, dev, on_step)?;
        report.nfe = nfe;
        report.network_calls = nfe;
        report.per_image = Some(done);
        report.seconds = t0.elapsed().as_secs_f64();
        return Ok(report);
    }
    std::fs::create_dir_all(&spec.out).map_err(|e| score_core::ScoreError::io(&spec.out, e))?;
    let total = (sigmas.len() - 1) as u64;
    let progress = |i: usize| on_step(i as u64, total);
    let (values, shape, png) = match &model {
        LoadedModel::Unet(net, chw) => {
            let s = sample_unet(spec, net, *chw, precond, &sigmas, &progress, dev)?;
            report.teleport_skip = s.teleport_k;
            report.calibration_nfe = s.calibration_nfe;
            report.nfe = s.nfe + s.calibration_nfe;
            report.network_calls = s.nfe * s.calls_per_eval + s.calibration_nfe;
            (s.values, s.shape, Some(s.png))
        }
        LoadedModel::Mlp(net, d) => {
            let (values, shape, nfe) = sample_mlp(spec, net, *d, precond, &sigmas, dev)?;
            (report.nfe, report.network_calls) = (nfe, nfe);
            (values, shape, None)
        }
    };
    write_samples(&spec.out, &shape, &values, png.as_deref())?;
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// `n` and `batch` at least 1, and one batch (with `batch`, else all `n` samples)
/// within memory.
fn check_counts(spec: &SampleSpec, model: &LoadedModel) -> Result<()> {
    if spec.batch == Some(0) {
        return Err(invalid("--batch: need at least one image per batch"));
    }
    pipeline::ensure_sampling_fits(model, spec.batch.map_or(spec.n, |b| b.min(spec.n.max(1))))?;
    if spec.n == 0 {
        return Err(invalid("--n: need at least one sample"));
    }
    Ok(())
}

/// DPM-Solver-v3's statistics must be this checkpoint's and cover the grid.
fn check_ems(spec: &SampleSpec, sampler: &Sampler, sigmas: &[f64]) -> Result<()> {
    let (Sampler::DpmSolverV3(v3), Some(path)) = (sampler, &spec.ems) else {
        return Ok(());
    };
    let digest = score_core::fs::file_digest(&spec.checkpoint)?;
    v3.stats.check_use(path, &digest, sigmas)?;
    Ok(())
}

/// Sampling an MLP checkpoint (vectors of dimension `d`): values, shape, NFE.
fn sample_mlp(
    spec: &SampleSpec,
    net: &score_nn::mlp::MlpDenoiser,
    d: usize,
    precond: score_core::Precond,
    sigmas: &[f64],
    dev: &Device,
) -> Result<(Vec<f32>, Vec<usize>, usize)> {
    if spec.teleport.is_some() {
        return Err(invalid(
            "--teleport is implemented for image (UNet) checkpoints",
        ));
    }
    let shape = [spec.n, d];
    let z = initial_noise(spec.noise.as_deref(), &shape, spec.seed, dev)?;
    let x = from_f64(
        &z.iter().map(|&v| v as f64 * sigmas[0]).collect::<Vec<_>>(),
        shape,
        dev,
    );
    let den = Preconditioned::new(net, precond);
    let out = spec
        .sampler()?
        .sample(&den, sigmas, x, &mut SampleContext::new())?;
    Ok((to_vec_f32(out.x)?, shape.to_vec(), out.nfe))
}

/// What sampling an image network gives: the images (row-major, with their shape and
/// grid PNG), the NFE, the teleport skip and its calibration cost, and the network calls
/// per evaluation (2 under classifier-free guidance).
struct UnetSamples {
    values: Vec<f32>,
    shape: Vec<usize>,
    png: Vec<u8>,
    nfe: usize,
    teleport_k: Option<usize>,
    calibration_nfe: usize,
    calls_per_eval: usize,
}

/// Sampling an image checkpoint: plain, guided, or teleported from the Gaussian model.
fn sample_unet(
    spec: &SampleSpec,
    net: &ImageNet,
    [ch, h, w]: [usize; 3],
    precond: score_core::Precond,
    sigmas: &[f64],
    progress: &dyn Fn(usize),
    dev: &Device,
) -> Result<UnetSamples> {
    let shape = [spec.n, ch, h, w];
    let z = initial_noise(spec.noise.as_deref(), &shape, spec.seed, dev)?;
    let noise = from_f32(z, shape, dev);
    let condition = image_condition(net, spec, 0..spec.n, dev)?;
    let calls_per_eval = if condition.cond.is_some() && condition.guidance != 1.0 {
        2
    } else {
        1
    };
    let (sampled, teleport_k, calibration_nfe) = match &spec.teleport {
        None => {
            let out = pipeline::generate_images(
                net,
                precond,
                &spec.sampler()?,
                sigmas,
                noise,
                &condition,
                |i, _| progress(i),
            )?;
            (out, None, 0)
        }
        Some(_) if condition.cond.is_some() => {
            return Err(invalid(
                "--teleport: the Gaussian model is unconditional; this checkpoint is class-conditional",
            ));
        }
        Some(t) => {
            let den = Preconditioned::new(net, precond);
            let (out, k, calib) = teleported(&den, t, &spec.sampler()?, sigmas, noise, progress)?;
            (out, Some(k), calib)
        }
    };
    let values = to_vec_f32(sampled.x)?;
    let png = image_grid_png(&values, shape, (spec.n as f64).sqrt().ceil() as usize)?;
    Ok(UnetSamples {
        values,
        shape: shape.to_vec(),
        png,
        nfe: sampled.nfe,
        teleport_k,
        calibration_nfe,
        calls_per_eval,
    })
}

/// Teleport `noise` (unit, scaled by σ₀) with the Gaussian model of `t`, then sample the
/// rest of the grid: the output, the level k started from, the calibration NFE.
fn teleported(
    den: &dyn score_core::Denoiser<4>,
    t: &TeleportSpec,
    sampler: &Sampler,
    sigmas: &[f64],
    noise: burn::tensor::Tensor<4>,
    progress: &dyn Fn(usize),
) -> Result<(SampleOutput<4>, usize, usize)> {
    let g = gaussian_score::ScoreModel::load(&t.model)?;
    let g = g.gaussian()?;
    let x_t = noise.mul_scalar(sigmas[0]);
    let probes = x_t.clone().narrow(0, 0, x_t.dims()[0].min(16));
    let (k, calib) = t.skip.resolve(den, g, sigmas, probes, None)?;
    let mut ctx = gaussian_score::teleport::progress(|i, _| progress(k + i));
    let out = if t.vp {
        teleport_vp(den, g, sampler, sigmas, x_t, k, &mut ctx)?
    } else {
        gaussian_score::teleport_sample(den, g, sampler, sigmas, x_t, k, &mut ctx)?
    };
    Ok((out, k, calib))
}

/// Teleportation in VP coordinates ([`gaussian_score::teleport_sample_vp`]) from the
/// EDM state `x_t` at σ₀, returned in EDM variables.
pub fn teleport_vp(
    den: &dyn score_core::Denoiser<4>,
    g: &GaussianScore,
    sampler: &Sampler,
    sigmas: &[f64],
    x_t: burn::tensor::Tensor<4>,
    k: usize,
    ctx: &mut SampleContext<'_, 4>,
) -> Result<SampleOutput<4>> {
    let deterministic_ddim = matches!(sampler, Sampler::Ddim(o) if o.eta == 0.0);
    if !(matches!(sampler, Sampler::Euler) || deterministic_ddim) {
        return Err(invalid(format!(
            "--vp: runs deterministic DDIM in VP coordinates; use --sampler euler, or ddim with --eta 0 (got {})",
            sampler.name()
        )));
    }
    let vp = score_core::samplers::vp_coefficients;
    let last = *sigmas
        .last()
        .ok_or_else(|| invalid("--steps: empty grid"))?;
    let mut out = gaussian_score::teleport_sample_vp(
        den,
        g,
        sigmas,
        x_t.mul_scalar(vp(sigmas[0]).0),
        k,
        ctx,
    )?;
    out.x = out.x.div_scalar(vp(last).0);
    Ok(out)
}
