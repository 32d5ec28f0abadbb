//! `scorelab sample`, `sigmas` and `ems`.

use crate::args::*;
use crate::common::*;
use anyhow::{Context, Result, bail};
use score_core::sigmas::GridKind;
use score_core::tensor::from_f64;
use score_io::npy::read_npy_finite;
use score_nn::Preconditioned;
use score_train::pipeline::{self, LoadedModel};
use scorelab_run::{GridSpec, SampleReport, SampleSpec, TeleportSpec};
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
    let inputs = [(&a.checkpoint, "--checkpoint"), (&a.model, "--model")];
    let inputs: Vec<_> = inputs
        .iter()
        .filter_map(|(p, f)| Some((p.as_deref()?, *f)))
        .collect();
    ensure_not_input(
        &a.out,
        "--out",
        &[&inputs[..], &[(Path::new(&a.data), "--data")]].concat(),
    )?;
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

impl SampleArgs {
    /// The run these flags describe.
    fn spec(&self, c: &Common) -> Result<SampleSpec> {
        let weights = match self.weights.as_str() {
            "ema" => pipeline::Weights::Ema,
            "raw" => pipeline::Weights::Raw,
            other => bail!("--weights: '{other}' is neither ema nor raw"),
        };
        let teleport = match &self.teleport {
            Some(model) => Some(TeleportSpec {
                model: model.clone(),
                skip: gaussian_score::Skip::from_options(
                    self.skip.as_deref().unwrap_or("15%"),
                    self.skip_sigma,
                    self.skip_threshold
                        .unwrap_or(gaussian_score::teleport::DEFAULT_AUTO_THRESHOLD),
                )?,
                vp: self.vp,
            }),
            None if self.vp
                || self.skip.is_some()
                || self.skip_sigma.is_some()
                || self.skip_threshold.is_some() =>
            {
                bail!(
                    "--vp/--skip/--skip-sigma/--skip-threshold: they set how teleportation runs; give --teleport MODEL"
                )
            }
            None => None,
        };
        let sampler = (self.sampler.is_some() || !self.sampler_opts.is_empty())
            .then(|| {
                let name = self.sampler.as_deref().unwrap_or("heun");
                sampler_from(name, c.seed(), &self.sampler_opts)
            })
            .transpose()?;
        let stated = self.steps.is_some()
            || self.grid.is_some()
            || self.rho.is_some()
            || self.sigma_min.is_some()
            || self.sigma_max.is_some();
        let grid = stated
            .then(|| -> Result<GridSpec> {
                Ok(GridSpec {
                    kind: self
                        .grid
                        .as_deref()
                        .unwrap_or("karras")
                        .parse::<GridKind>()?,
                    steps: self.steps.unwrap_or(18),
                    sigma_min: self.sigma_min,
                    sigma_max: self.sigma_max,
                    rho: self.rho,
                })
            })
            .transpose()?;
        Ok(SampleSpec {
            checkpoint: self.checkpoint.clone(),
            weights,
            n: self.n,
            sampler,
            grid,
            ems: self.sampler_opts.ems_path().map(Path::to_path_buf),
            class: self.class,
            guidance: self.guidance,
            noise: self.noise.clone(),
            teleport,
            batch: self.batch,
            out: self.out.clone(),
            seed: c.seed(),
        })
    }
}

pub(crate) fn cmd_sample(c: &Common, a: &SampleArgs) -> Result<()> {
    let spec = a.spec(c)?;
    let pb = (!c.json).then(|| {
        bar(
            0,
            if a.batch.is_some() {
                "images"
            } else {
                "sample"
            },
        )
    });
    let on_step = |i: u64, n: u64| {
        if let Some(b) = &pb {
            b.set_length(n);
            b.set_position(i);
        }
    };
    let r = scorelab_run::sample(&spec, &device(&c.device)?, &on_step);
    if let Some(b) = pb {
        b.finish_and_clear();
    }
    let r = r?;
    emit(c.json, serde_json::to_value(&r)?, || {
        outln!("{}", sample_line(&r))
    });
    Ok(())
}

/// The plain output of `sample`: what was drawn, how, and where it went.
fn sample_line(r: &SampleReport) -> String {
    if let Some(p) = &r.per_image {
        return format!(
            "{} images with {} in {:.1} s -> {} ({} written, {} already there){}",
            r.n,
            r.sampler,
            r.seconds,
            p.images.display(),
            p.written,
            p.kept,
            if p.samples_npy {
                "; samples.npy and samples.png beside it"
            } else {
                ""
            }
        );
    }
    if let Some(sigma_gen) = r.sigma_gen {
        return format!(
            "{} samples from a one-step generator (1 NFE, σ_gen = {sigma_gen}) in {:.2} s -> {}",
            r.n,
            r.seconds,
            r.out.display()
        );
    }
    format!(
        "{} samples with {} ({} NFE{}) in {:.1} s -> {}",
        r.n,
        r.sampler,
        r.nfe,
        teleport_note(
            r.teleport_skip,
            r.nfe - r.calibration_nfe,
            r.calibration_nfe
        ),
        r.seconds,
        r.out.display()
    )
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
