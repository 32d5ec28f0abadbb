//! The few-step sampler comparison on a UNet checkpoint (`cargo xtask experiment
//! samplers`): FID of n samples at several NFE for DPM-Solver++(2M), UniPC and
//! DPM-Solver-v3 (as the reference runs it, and its plain multistep predictor), every
//! sampler from the same unit noise on the same Karras grid (ρ = 7, σ ∈ [0.002, 80],
//! NFE levels and a final step to 0). v3's statistics are estimated once, from
//! class-balanced training images.

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;
use score_core::Result;
use score_core::samplers::dpm_solver_v3::{ModelStatistics, V3Options, V3Sampler};
use score_core::samplers::{Sampler, UniPcOptions};
use score_core::sigmas::karras_sigmas;
use score_core::tensor::{from_f32, randn, stream_rng, to_vec_f32};
use score_train::pipeline::{self, ImageCondition};

/// FID network and held-out reference.
pub type FidSetup<'a> = (
    &'a score_eval::fid::FidInception,
    &'a score_eval::fid::FidReference,
);

/// Settings of the comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SamplerStudy {
    /// Samples per sampler and NFE.
    pub n: usize,
    /// The NFE values.
    pub nfes: Vec<usize>,
    /// Seed of the noise (the same for every sampler) and of the statistics.
    pub seed: u64,
    /// Training images the v3 statistics are estimated from.
    pub ems_images: usize,
    /// λ points of the statistics.
    pub ems_points: usize,
    /// Images per network batch.
    pub batch: usize,
    /// The NFE values where the controls also run: v3's plain predictor (no corrector,
    /// no pseudo-order, no lower final orders) and v3 with zero statistics (the
    /// solver's DPM-Solver++ limit, with the reference's refinements).
    pub controls_at: Vec<usize>,
}

impl SamplerStudy {
    /// The documented run: 1 000 samples at 5, 8, 10 and 18 NFE, statistics from 256
    /// images at 64 λ points.
    pub fn full() -> Self {
        Self {
            n: 1000,
            nfes: vec![5, 8, 10, 18],
            seed: 0,
            ems_images: 256,
            ems_points: 64,
            batch: 100,
            controls_at: vec![10],
        }
    }

    /// CI's version: a handful of samples at 5 NFE.
    pub fn quick() -> Self {
        Self {
            n: 8,
            nfes: vec![5],
            seed: 0,
            ems_images: 8,
            ems_points: 4,
            batch: 8,
            controls_at: vec![5],
        }
    }
}

/// One sampler at one NFE.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// The sampler's name in the table.
    pub sampler: String,
    /// Network evaluations per sample.
    pub nfe: usize,
    /// FID against the reference (when FID is set up).
    pub fid: Option<score_eval::fid::FidEstimate>,
    /// Largest |pixel| of the samples (data in [−1, 1]).
    pub max_abs: f64,
    /// Wall time of sampling and FID.
    pub seconds: f64,
}

/// The samplers compared, by table name, with the controls when `controls`.
fn samplers(stats: &ModelStatistics, controls: bool) -> Vec<(&'static str, Sampler)> {
    let v3 = |stats: &ModelStatistics, opts: V3Options| {
        Sampler::DpmSolverV3(Box::new(V3Sampler {
            stats: stats.clone(),
            opts,
        }))
    };
    let mut all = vec![
        ("dpmpp-2m", Sampler::DpmppTwoM),
        ("unipc", Sampler::UniPc(UniPcOptions::default())),
        ("dpm-solver-v3", v3(stats, V3Options::default())),
    ];
    if controls {
        let zero = ModelStatistics::zero(stats.dim, 0.002, 80.0);
        all.push((
            "dpm-solver-v3, predictor only",
            v3(stats, V3Options::predictor(3)),
        ));
        all.push((
            "dpm-solver-v3, zero statistics",
            v3(&zero, V3Options::default()),
        ));
    }
    all
}

/// v3's statistics of `net` from `o.ems_images` class-balanced training images.
fn statistics(
    den: &dyn score_core::Denoiser<4>,
    shape: [usize; 3],
    o: &SamplerStudy,
    device: &Device,
) -> Result<ModelStatistics> {
    let (train, _) = pipeline::demo_split()?;
    let images = train.balanced_subset(o.ems_images);
    let [c, h, w] = shape;
    let n = images.num_images();
    let x0 = from_f32(images.pixels, [n, c, h, w], device);
    ModelStatistics::estimate(den, x0, 0.002, 80.0, o.ems_points, o.seed)
}

/// How much v3's statistics move between two disjoint draws of training images: per λ
/// point, the root-mean-square over dimensions of l_A − l_B and s_A − s_B, beside the
/// rms of l_A and s_A (the study's statistics use draw A).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatisticsSpread {
    /// σ of each λ point.
    pub sigma: Vec<f64>,
    /// rms(l_A − l_B) per point.
    pub l_diff: Vec<f64>,
    /// rms(l_A) per point.
    pub l_rms: Vec<f64>,
    /// rms(s_A − s_B) per point.
    pub s_diff: Vec<f64>,
    /// rms(s_A) per point.
    pub s_rms: Vec<f64>,
}

/// [`StatisticsSpread`] of the UNet checkpoint `ck`: statistics from the study's
/// `o.ems_images` class-balanced images (A) and from the next `o.ems_images` of the same
/// balanced order (B, disjoint), at `o.ems_points` λ points.
pub fn statistics_spread(ck: &Path, o: &SamplerStudy, device: &Device) -> Result<StatisticsSpread> {
    let (net, [c, h, w], precond, _) = pipeline::load_unet(ck, device)?;
    let den = score_nn::Preconditioned::new(&net, precond);
    let (train, _) = pipeline::demo_split()?;
    let m = o.ems_images;
    let both = train.balanced_subset(2 * m);
    let per = c * h * w;
    let stats = |rows: std::ops::Range<usize>| {
        let n = rows.len();
        let x0 = from_f32(
            both.pixels[rows.start * per..rows.end * per].to_vec(),
            [n, c, h, w],
            device,
        );
        ModelStatistics::estimate(&den, x0, 0.002, 80.0, o.ems_points, o.seed)
    };
    let (a, b) = (stats(0..m)?, stats(m..2 * m)?);
    let rms = |v: &mut dyn Iterator<Item = f64>, d: usize| {
        (v.map(|x| x * x).sum::<f64>() / d as f64).sqrt()
    };
    let d = a.dim;
    let pairs = a.l.iter().zip(&b.l).zip(a.s.iter().zip(&b.s));
    let (mut l_diff, mut l_rms, mut s_diff, mut s_rms) = (vec![], vec![], vec![], vec![]);
    for ((la, lb), (sa, sb)) in pairs {
        l_diff.push(rms(&mut la.iter().zip(lb).map(|(x, y)| x - y), d));
        l_rms.push(rms(&mut la.iter().copied(), d));
        s_diff.push(rms(&mut sa.iter().zip(sb).map(|(x, y)| x - y), d));
        s_rms.push(rms(&mut sa.iter().copied(), d));
    }
    Ok(StatisticsSpread {
        sigma: a.lambdas.iter().map(|l| (-l).exp()).collect(),
        l_diff,
        l_rms,
        s_diff,
        s_rms,
    })
}

/// Run the comparison on the UNet checkpoint `ck`; `on_row` sees each row as it is done.
/// Returns the rows and the statistics' wall time.
pub fn run_samplers(
    ck: &Path,
    o: &SamplerStudy,
    fid: Option<FidSetup>,
    device: &Device,
    mut on_row: impl FnMut(&Row),
) -> Result<(Vec<Row>, f64)> {
    let (net, shape, precond, _) = pipeline::load_unet(ck, device)?;
    let den = score_nn::Preconditioned::new(&net, precond);
    let t0 = Instant::now();
    let stats = statistics(&den, shape, o, device)?;
    let ems_seconds = t0.elapsed().as_secs_f64();
    let [c, h, w] = shape;
    let noise = randn(
        [o.n, c, h, w],
        &mut stream_rng(o.seed, 0x5341_4d50, 0),
        device,
    );
    let noise = to_vec_f32(noise)?;
    let mut rows = Vec::new();
    for &nfe in &o.nfes {
        let sigmas = karras_sigmas(nfe, 0.002, 80.0, 7.0)?;
        for (name, sampler) in samplers(&stats, o.controls_at.contains(&nfe)) {
            let t = Instant::now();
            let x = sample_all(
                &net,
                precond,
                &sampler,
                &sigmas,
                &noise,
                (shape, o.batch),
                device,
            )?;
            let max_abs = x.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
            let fid = match fid {
                Some((inception, reference)) => {
                    let bytes = score_eval::fid::quantize_signed(&x)?;
                    let f = inception.features(&bytes, [o.n, c, h, w], 16, |_| {})?;
                    Some(reference.estimate(&f, 200, o.seed)?)
                }
                None => None,
            };
            let row = Row {
                sampler: name.into(),
                nfe,
                fid,
                max_abs,
                seconds: t.elapsed().as_secs_f64(),
            };
            on_row(&row);
            rows.push(row);
        }
    }
    Ok((rows, ems_seconds))
}

/// `noise` (unit, `[n, c, h, w]` row-major) through `sampler` on `sigmas`, in batches.
fn sample_all(
    net: &score_nn::unet::UNet,
    precond: score_core::Precond,
    sampler: &Sampler,
    sigmas: &[f64],
    noise: &[f32],
    ([c, h, w], batch): ([usize; 3], usize),
    device: &Device,
) -> Result<Vec<f32>> {
    let d = c * h * w;
    let mut out = Vec::with_capacity(noise.len());
    for chunk in noise.chunks(batch.max(1) * d) {
        let b = chunk.len() / d;
        let x = from_f32(chunk.to_vec(), [b, c, h, w], device);
        let o = pipeline::generate_images(
            net,
            precond,
            sampler,
            sigmas,
            x,
            &ImageCondition::none(),
            |_, _| {},
        )?;
        out.extend(to_vec_f32(o.x)?);
    }
    Ok(out)
}

/// The table: FID ± bootstrap standard error per sampler (rows) and NFE (columns).
pub fn markdown(rows: &[Row], o: &SamplerStudy) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.sampler.as_str()) {
            names.push(&r.sampler);
        }
    }
    let head: Vec<String> = o.nfes.iter().map(|n| format!("NFE {n}")).collect();
    let mut md = format!(
        "| sampler | {} |\n|---|{}\n",
        head.join(" | "),
        "---|".repeat(o.nfes.len())
    );
    for name in names {
        let cells: Vec<String> = o
            .nfes
            .iter()
            .map(|&nfe| {
                let r = rows.iter().find(|r| r.sampler == name && r.nfe == nfe);
                match r.and_then(|r| r.fid.as_ref().map(|f| (f, r.max_abs))) {
                    Some((f, m)) => format!("{:.2} ± {:.2} (max {m:.2})", f.fid, f.std_error),
                    None => "–".into(),
                }
            })
            .collect();
        md += &format!("| {name} | {} |\n", cells.join(" | "));
    }
    md + &format!(
        "\nFID against the 1 000 held-out images, {} samples per cell from the same noise (seed {}), ± the bootstrap standard error of the generated set (200 resamples); max = largest |pixel| (data in [−1, 1]). v3's statistics: {} training images, {} λ points.\n",
        o.n, o.seed, o.ems_images, o.ems_points
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_comparison_runs_every_sampler_from_the_same_noise() {
        let device = Device::flex();
        let o = SamplerStudy::quick();
        let ck = pipeline::shipped_checkpoint();
        let (rows, _) = run_samplers(&ck, &o, None, &device, |_| {}).unwrap();
        assert_eq!(rows.len(), 5);
        for r in &rows {
            assert_eq!(r.nfe, 5);
            assert!(r.max_abs.is_finite() && r.max_abs > 0.0, "{}", r.sampler);
        }
        assert!(markdown(&rows, &o).contains("dpm-solver-v3, zero statistics"));
    }
}
