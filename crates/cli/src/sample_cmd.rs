//! `scorelab sample`, `sigmas` and `ems`.

use crate::args::*;
use crate::common::*;
use crate::distill_cmd;
use crate::sample_images::image_condition;
use anyhow::{Context, Result, bail};
use score_core::fs::write_atomic_all;
use score_core::samplers::{SampleContext, Sampler};
use score_core::sigmas::GridKind;
use score_core::tensor::{from_f64, to_vec_f32};
use score_io::image::image_grid_png;
use score_io::npy::{npy_f32_bytes, read_npy_finite};
use score_nn::Preconditioned;
use score_train::pipeline::{self, LoadedModel};
use std::path::Path;
use std::time::Instant;

/// The statistics hold three float64 vectors (l, s, b) of the data's dimension per λ
/// point: refuse a --points that cannot fit before any work.
fn ensure_statistics_fit(model: &LoadedModel, points: usize) -> Result<()> {
    let dim: u128 = match model {
        LoadedModel::Unet(_, chw) => chw.iter().product::<usize>() as u128,
        LoadedModel::Mlp(_, d) => *d as u128,
    };
    score_core::limits::ensure_values_fit(
        "--points",
        points as u128,
        3 * 8 * dim,
        "use fewer --points (DPM-Solver-v3 uses 50 to 200)",
    )?;
    Ok(())
}

pub(crate) fn cmd_ems(c: &Common, a: &EmsArgs) -> Result<()> {
    let dev = device(&c.device)?;
    if a.n < 2 || a.points < 2 {
        bail!("--n and --points: need at least 2 each");
    }
    if !(a.sigma_min > 0.0 && a.sigma_max > a.sigma_min && a.sigma_max.is_finite()) {
        bail!("--sigma-min/--sigma-max: need 0 < min < max < inf");
    }
    let Some(checkpoint) = &a.checkpoint else {
        return ems_of_exact_model(c, a);
    };
    let (model, precond, _) = pipeline::load_model(checkpoint, &dev)?;
    ensure_sampling_fits(&model, a.n)?;
    ensure_statistics_fit(&model, a.points)?;
    let t0 = Instant::now();
    let est = |stats: Result<
        score_core::samplers::dpm_solver_v3::ModelStatistics,
        score_core::ScoreError,
    >| { stats.map_err(anyhow::Error::from) };
    let stats = match &model {
        LoadedModel::Unet(net, [ch, h, w]) => {
            let images = load_images(&a.data, None)?.balanced_subset(a.n);
            if images.image_shape != [*ch, *h, *w] {
                bail!(
                    "--data: images of shape {:?}, the checkpoint's are {:?}",
                    images.image_shape,
                    [ch, h, w]
                );
            }
            let n = images.num_images();
            let x0 = score_core::tensor::from_f32(images.pixels, [n, *ch, *h, *w], &dev);
            let den = Preconditioned::new(net, precond);
            est(
                score_core::samplers::dpm_solver_v3::ModelStatistics::estimate(
                    &den,
                    x0,
                    a.sigma_min,
                    a.sigma_max,
                    a.points,
                    c.seed(),
                ),
            )?
        }
        LoadedModel::Mlp(net, d) => {
            let path = Path::new(&a.data);
            let arr = read_npy_finite(path)?;
            let n = arr.rows_of(path, *d)?.min(a.n);
            let x0 = from_f64(&arr.data[..n * d], [n, *d], &dev);
            let den = Preconditioned::new(net, precond);
            est(
                score_core::samplers::dpm_solver_v3::ModelStatistics::estimate(
                    &den,
                    x0,
                    a.sigma_min,
                    a.sigma_max,
                    a.points,
                    c.seed(),
                ),
            )?
        }
    };
    let stats = score_core::samplers::dpm_solver_v3::ModelStatistics {
        model: Some(score_core::fs::file_digest(checkpoint)?),
        ..stats
    };
    report_ems(c, a, &stats, t0)
}

/// `ems --model`: the statistics of an exact model of `gaussian fit` over `--data`'s rows.
fn ems_of_exact_model(c: &Common, a: &EmsArgs) -> Result<()> {
    let path = a.model.as_deref().context("--checkpoint or --model")?;
    let dev = device(&c.device)?;
    let model = gaussian_score::ScoreModel::load(path)?;
    let d = model.dim();
    let data = Path::new(&a.data);
    let arr = read_npy_finite(data)
        .with_context(|| format!("--data {}: ems --model needs a .npy of rows", a.data))?;
    let n = arr.rows_of(data, d)?.min(a.n);
    score_core::limits::ensure_values_fit(
        "ems --points",
        a.points as u128,
        (3 * d * 8) as u128,
        "use fewer --points",
    )?;
    let t0 = Instant::now();
    // Exact models compute on the host in float64: estimate in float64 too, so that the
    // finite differences of the statistics are not float32's rounding.
    let x0 =
        score_core::tensor::from_f64_as(&arr.data[..n * d], [n, d], burn::tensor::DType::F64, &dev);
    let stats = score_core::samplers::dpm_solver_v3::ModelStatistics::estimate(
        &model,
        x0,
        a.sigma_min,
        a.sigma_max,
        a.points,
        c.seed(),
    )?;
    let stats = score_core::samplers::dpm_solver_v3::ModelStatistics {
        model: Some(score_core::fs::file_digest(path)?),
        ..stats
    };
    report_ems(c, a, &stats, t0)
}

/// Save the statistics and say what was done.
fn report_ems(
    c: &Common,
    a: &EmsArgs,
    stats: &score_core::samplers::dpm_solver_v3::ModelStatistics,
    t0: Instant,
) -> Result<()> {
    stats.save(&a.out)?;
    let secs = t0.elapsed().as_secs_f64();
    emit(
        c.json,
        serde_json::json!({"out": a.out, "points": a.points, "n": a.n, "dim": stats.dim, "network_evaluations": 4 * a.points, "seconds": secs}),
        || {
            outln!(
                "statistics of dimension {} at {} λ points ({} batched network evaluations) in {secs:.1} s -> {}",
                stats.dim,
                a.points,
                4 * a.points,
                a.out.display()
            )
        },
    );
    Ok(())
}

/// `sample --teleport --vp`: the VP path ([`gaussian_score::teleport_sample_vp`]) from the
/// EDM state `x_t` at σ₀, returned in EDM variables.
pub(crate) fn teleport_vp(
    den: &dyn score_core::Denoiser<4>,
    g: &gaussian_score::GaussianScore,
    sampler: &Sampler,
    sigmas: &[f64],
    x_t: burn::tensor::Tensor<4>,
    k: usize,
    ctx: &mut SampleContext<'_, 4>,
) -> Result<score_core::samplers::SampleOutput<4>> {
    let deterministic_ddim = matches!(sampler, Sampler::Ddim(o) if o.eta == 0.0);
    if !(matches!(sampler, Sampler::Euler) || deterministic_ddim) {
        bail!(
            "--vp: runs deterministic DDIM in VP coordinates; use --sampler euler, or ddim with --eta 0 (got {})",
            sampler.name()
        );
    }
    let vp = score_core::samplers::vp_coefficients;
    let last = *sigmas.last().context("--steps: empty grid")?;
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

/// DPM-Solver-v3's statistics must be this checkpoint's and cover the grid.
fn check_ems(a: &SampleArgs, sampler: &Sampler, sigmas: &[f64]) -> Result<()> {
    let (Sampler::DpmSolverV3(v3), Some(path)) = (sampler, a.sampler_opts.ems_path()) else {
        return Ok(());
    };
    let digest = score_core::fs::file_digest(&a.checkpoint)?;
    v3.stats.check_use(path, &digest, sigmas)?;
    Ok(())
}

pub(crate) fn cmd_sample(c: &Common, a: &SampleArgs) -> Result<()> {
    let dev = device(&c.device)?;
    let weights = match a.weights.as_str() {
        "ema" => pipeline::Weights::Ema,
        "raw" => pipeline::Weights::Raw,
        other => bail!("--weights: '{other}' is neither ema nor raw"),
    };
    let (model, precond, meta) = pipeline::load_model_weights(&a.checkpoint, &dev, weights)?;
    check_counts(a, &model)?;
    if let Some(sigma_gen) = pipeline::one_step_sigma(&a.checkpoint, &meta)? {
        return distill_cmd::sample_one_step(c, a, &model, &precond, sigma_gen, meta.step, &dev);
    }
    let sampler = sampler_from(&a.sampler, c.seed(), &a.sampler_opts)?;
    let sigmas = sigma_grid(a)?;
    check_ems(a, &sampler, &sigmas)?;
    if let Some(batch) = a.batch {
        return crate::sample_images::sample_per_image(
            c, a, &model, precond, &sampler, &sigmas, batch, &dev,
        );
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let t0 = Instant::now();
    let pb = (!c.json).then(|| bar((sigmas.len() - 1) as u64, "sample"));
    let (mut teleport_k, mut calibration_nfe, mut calls_per_eval) = (None, 0, 1);
    let mut pngs: Option<Vec<u8>> = None;
    let (values, shape, nfe) = match &model {
        LoadedModel::Unet(net, [ch, h, w]) => {
            let s = sample_unet(
                (c.seed(), &dev),
                a,
                net,
                [*ch, *h, *w],
                precond,
                &sampler,
                &sigmas,
                &pb,
            )?;
            (teleport_k, calibration_nfe, calls_per_eval) =
                (s.teleport_k, s.calibration_nfe, s.calls_per_eval);
            pngs = Some(s.png);
            (s.values, s.shape, s.nfe)
        }
        LoadedModel::Mlp(net, d) => sample_mlp(c, a, net, *d, precond, &sampler, &sigmas, &dev)?,
    };
    if let Some(b) = pb {
        b.finish_and_clear();
    }
    // Both files or neither: a failure never leaves a new one beside an old one.
    let npy = npy_f32_bytes(&shape, &values)?;
    let (npy_path, png_path) = (a.out.join("samples.npy"), a.out.join("samples.png"));
    let mut files: Vec<(&Path, &[u8])> = vec![(&npy_path, &npy)];
    if let Some(p) = &pngs {
        files.push((&png_path, p));
    }
    write_atomic_all(&files)?;
    let secs = t0.elapsed().as_secs_f64();
    emit(
        c.json,
        serde_json::json!({"checkpoint": a.checkpoint, "trained_steps": meta.step, "sampler": sampler.name(), "steps": a.steps, "nfe": nfe + calibration_nfe, "calibration_nfe": calibration_nfe, "network_calls": nfe * calls_per_eval + calibration_nfe, "teleport_skip": teleport_k, "n": a.n, "seconds": secs, "out": a.out}),
        || {
            outln!(
                "{} samples with {} ({} NFE{}) in {secs:.1} s -> {}",
                a.n,
                sampler.name(),
                nfe + calibration_nfe,
                teleport_note(teleport_k, nfe, calibration_nfe),
                a.out.display()
            )
        },
    );
    Ok(())
}

/// What the plain output says of teleportation: the level k it started from and the
/// NFE split (issue 27: which k `--skip auto` chose was not printed).
fn teleport_note(k: Option<usize>, nfe: usize, calibration: usize) -> String {
    match k {
        None => String::new(),
        Some(k) if calibration > 0 => format!(
            ": teleported to grid level k = {k}, {nfe} for sampling and {calibration} for the automatic skip"
        ),
        Some(k) => format!(": teleported to grid level k = {k}, {nfe} for sampling"),
    }
}

/// `--n` and `--batch` at least 1, and one batch (with `--batch`, else all `--n`
/// samples) within memory.
fn check_counts(a: &SampleArgs, model: &LoadedModel) -> Result<()> {
    if a.batch == Some(0) {
        bail!("--batch: need at least one image per batch");
    }
    ensure_sampling_fits(model, a.batch.map_or(a.n, |b| b.min(a.n.max(1))))?;
    if a.n == 0 {
        bail!("--n: need at least one sample");
    }
    Ok(())
}

/// `sample` on an MLP checkpoint (vectors of dimension `d`).
#[allow(clippy::too_many_arguments)]
fn sample_mlp(
    c: &Common,
    a: &SampleArgs,
    net: &score_nn::mlp::MlpDenoiser,
    d: usize,
    precond: score_core::Precond,
    sampler: &Sampler,
    sigmas: &[f64],
    dev: &burn::tensor::Device,
) -> Result<(Vec<f32>, Vec<usize>, usize)> {
    if a.teleport.is_some() || a.vp {
        bail!("--teleport is implemented for image (UNet) checkpoints");
    }
    let shape = [a.n, d];
    let z = initial_noise(a.noise.as_deref(), &shape, c.seed(), dev)?;
    let x = from_f64(
        &z.iter().map(|&v| v as f64 * sigmas[0]).collect::<Vec<_>>(),
        shape,
        dev,
    );
    let den = Preconditioned::new(net, precond);
    let out = sampler.sample(&den, sigmas, x, &mut SampleContext::new())?;
    Ok((to_vec_f32(out.x)?, shape.to_vec(), out.nfe))
}

/// The σ grid of `sample`'s flags: `--grid` with `--steps`, `--sigma-min/max` and, for
/// the Karras grid, `--rho`.
fn sigma_grid(a: &SampleArgs) -> Result<Vec<f64>> {
    let kind = a.grid.parse::<GridKind>()?;
    Ok(match (kind, a.rho) {
        (GridKind::Karras, Some(rho)) => {
            let (lo, hi) = kind.default_range();
            score_core::sigmas::karras_sigmas(
                a.steps,
                a.sigma_min.unwrap_or(lo),
                a.sigma_max.unwrap_or(hi),
                rho,
            )?
        }
        (_, Some(_)) => bail!("--rho applies to the karras grid, not {}", a.grid),
        (_, None) => kind.build_or_default(a.steps, a.sigma_min, a.sigma_max)?,
    })
}

/// What sampling a UNet gives: the images (row-major, with their shape and grid PNG),
/// the NFE, the teleport skip and its calibration cost, and the network calls per
/// evaluation (2 under classifier-free guidance).
struct UnetSamples {
    values: Vec<f32>,
    shape: Vec<usize>,
    png: Vec<u8>,
    nfe: usize,
    teleport_k: Option<usize>,
    calibration_nfe: usize,
    calls_per_eval: usize,
}

/// `sample` on a UNet checkpoint: plain, guided, or teleported from the Gaussian model.
#[allow(clippy::too_many_arguments)]
fn sample_unet(
    (seed, dev): (u64, &burn::tensor::Device),
    a: &SampleArgs,
    net: &score_nn::network::ImageNet,
    chw: [usize; 3],
    precond: score_core::Precond,
    sampler: &Sampler,
    sigmas: &[f64],
    pb: &Option<indicatif::ProgressBar>,
) -> Result<UnetSamples> {
    let mut out = UnetSamples {
        values: Vec::new(),
        shape: Vec::new(),
        png: Vec::new(),
        nfe: 0,
        teleport_k: None,
        calibration_nfe: 0,
        calls_per_eval: 1,
    };
    let [ch, h, w] = chw;
    let shape = [a.n, ch, h, w];
    let z = initial_noise(a.noise.as_deref(), &shape, seed, dev)?;
    let noise = score_core::tensor::from_f32(z, shape, dev);
    let condition = image_condition(net, a, dev)?;
    if condition.cond.is_some() && condition.guidance != 1.0 {
        out.calls_per_eval = 2;
    }
    let sampled = match &a.teleport {
        None => {
            pipeline::generate_images(net, precond, sampler, sigmas, noise, &condition, |i, _| {
                if let Some(b) = &pb {
                    b.set_position(i as u64)
                }
            })?
        }
        Some(_) if condition.cond.is_some() => {
            bail!(
                "--teleport: the Gaussian model is unconditional; this checkpoint is class-conditional"
            )
        }
        Some(model) => {
            let g = gaussian_score::ScoreModel::load(model)?;
            let g = g.gaussian()?;
            let den = Preconditioned::new(net, precond);
            let x_t = noise.mul_scalar(sigmas[0]);
            let skip = gaussian_score::Skip::from_options(&a.skip, a.skip_sigma, a.skip_threshold)?;
            let probes = x_t.clone().narrow(0, 0, x_t.dims()[0].min(16));
            let (k, calib) = skip.resolve(&den, g, sigmas, probes, None)?;
            out.calibration_nfe = calib;
            out.teleport_k = Some(k);
            let mut ctx = gaussian_score::teleport::progress(|i, _| {
                if let Some(b) = &pb {
                    b.set_position((k + i) as u64)
                }
            });
            if a.vp {
                teleport_vp(&den, g, sampler, sigmas, x_t, k, &mut ctx)?
            } else {
                gaussian_score::teleport_sample(&den, g, sampler, sigmas, x_t, k, &mut ctx)?
            }
        }
    };
    out.values = to_vec_f32(sampled.x)?;
    out.png = image_grid_png(&out.values, shape, (a.n as f64).sqrt().ceil() as usize)?;
    out.shape = shape.to_vec();
    out.nfe = sampled.nfe;
    Ok(out)
}

pub(crate) fn cmd_sigmas(c: &Common, a: &SigmasArgs) -> Result<()> {
    let s = a
        .grid
        .parse::<GridKind>()?
        .build_or_default(a.steps, a.sigma_min, a.sigma_max)?;
    emit(
        c.json,
        serde_json::json!({"grid": a.grid, "sigmas": s}),
        || {
            for (i, v) in s.iter().enumerate() {
                outln!("{i:4}  {v:.6}");
            }
        },
    );
    Ok(())
}
