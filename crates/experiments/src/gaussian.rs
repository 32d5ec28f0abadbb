//! The two studies of the paper on a score-core UNet checkpoint, shared by
//! `scorelab gaussian ev` and `cargo xtask experiment teleport|gaussian-ev`:
//! the explained-variance table per σ ([`ev_study`]) and the teleportation sweep over
//! the skip index k ([`teleport_sweep`]). Both write JSON, a markdown table and SVG plots.

use score_core::array::rows_of;
use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;
use score_core::metrics::{frechet_distance, pca_basis, pca_project, sliced_w2};
use score_core::samplers::{SampleContext, Sampler};
use score_core::sigmas::karras_sigmas;
use score_core::tensor::{from_f32, randn, stream_rng, to_vec_f64};
use score_core::{Denoiser, ScoreError};
use score_eval::plot::{Plot, Series};
use score_io::images::ImageDataset;
use score_nn::Preconditioned;
use score_train::pipeline;

use gaussian_score::error::Result;
use gaussian_score::ev::{EvRow, ev_table};
use gaussian_score::teleport::{auto_skip, teleport_sample};
use gaussian_score::{DeltaScore, GaussianScore, MixtureScore};

fn io(path: &Path, e: std::io::Error) -> gaussian_score::GaussError {
    ScoreError::io(path, e).into()
}

fn write(path: &Path, text: &str) -> Result<()> {
    Ok(score_core::fs::write_atomic(path, text.as_bytes())?)
}

/// The noise levels and probe count of an EV study, before any work: every σ finite and
/// positive (σ = 0 has no score, and gave a table of NaN), at least one σ and one probe
/// (0 probes panicked in a reshape).
fn check_ev_request(sigmas: &[f64], probes: usize) -> Result<()> {
    let invalid =
        |field, detail: String| Err(score_core::ScoreError::invalid(field, detail).into());
    if let Some(s) = sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return invalid(
            "--sigmas",
            format!("every σ must be finite and positive, got {s}"),
        );
    }
    if sigmas.is_empty() {
        return invalid("--sigmas", "need at least one σ".into());
    }
    if probes == 0 {
        return invalid("--probes", "need at least one probe image".into());
    }
    Ok(())
}

/// Explained variance of the checkpoint's denoiser and score against the Gaussian, the
/// K-component mixtures and the delta mixture of the training images, per σ, on
/// `probes` training and `probes` held-out images. `data` is (training, held-out)
/// images of the checkpoint's shape, `None` for the demo's split. Writes `ev.json`,
/// `ev.md`, `ev_score.svg`, `ev_denoiser.svg` under `out`.
#[allow(clippy::too_many_arguments)]
pub fn ev_study(
    checkpoint: &Path,
    data: Option<(ImageDataset, ImageDataset)>,
    sigmas: &[f64],
    components: &[usize],
    probes: usize,
    seed: u64,
    out: &Path,
    device: &Device,
) -> Result<Vec<EvRow>> {
    check_ev_request(sigmas, probes)?;
    let (net, chw, precond, meta) = pipeline::load_image_net(checkpoint, device)?;
    let (train, held) = match data {
        Some(d) => d,
        None => pipeline::demo_split()?,
    };
    if train.image_shape != chw || held.image_shape != chw {
        return Err(score_core::ScoreError::invalid(
            "data",
            format!(
                "images of shape {:?}, the checkpoint {} takes {chw:?}",
                train.image_shape,
                checkpoint.display()
            ),
        )
        .into());
    }
    let fits = Approximations::fit(&train, components, seed)?;
    let approx = fits.list();
    let den = Preconditioned::new(&net, precond);
    let all = ev_on_probes(&den, &approx, &train, &held, probes, sigmas, seed, device)?;
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let json = serde_json::json!({"checkpoint": checkpoint, "trained_steps": meta.step, "probes": probes, "rows": all});
    write(
        &out.join("ev.json"),
        &serde_json::to_string_pretty(&json).expect("serialises"),
    )?;
    let names: Vec<String> = approx.iter().map(|(n, _)| n.clone()).collect();
    write(&out.join("ev.md"), &ev_markdown(&all, &names, sigmas))?;
    for (what, pick) in [("score", 0), ("denoiser", 1)] {
        let mut series = Vec::new();
        for n in &names {
            for p in ["train", "heldout"] {
                series.push(Series {
                    label: format!("{n} ({p})"),
                    points: all
                        .iter()
                        .filter(|r| &r.approx == n && r.probes == p)
                        .map(|r| (r.sigma, if pick == 0 { r.score_ev } else { r.denoiser_ev }))
                        .collect(),
                    markers_only: false,
                });
            }
        }
        Plot {
            title: format!("EV of the network's {what} (values below −0.2 off-scale)"),
            x_label: "noise level σ".into(),
            y_label: format!("explained variance ({what})"),
            log_x: true,
            log_y: false,
            series,
            y_range: Some((-0.2, 1.02)),
        }
        .save(&out.join(format!("ev_{what}.svg")))?;
    }
    Ok(all)
}

/// The Gaussian, K-component mixtures and delta mixture of a training set, fitted once.
pub struct Approximations {
    g: GaussianScore,
    mixtures: Vec<(usize, MixtureScore)>,
    delta: DeltaScore,
}

impl Approximations {
    /// Fit them to the images of `train` (mixtures of each size in `components` > 1).
    pub fn fit(
        train: &score_io::images::ImageDataset,
        components: &[usize],
        seed: u64,
    ) -> Result<Self> {
        let d = train.image_shape.iter().product();
        let rows = rows_of(train.rows_f64(), d);
        let g = GaussianScore::fit(rows.view(), None)?;
        let mixtures = components
            .iter()
            .filter(|&&k| k > 1)
            .map(|&k| Ok((k, MixtureScore::fit(rows.view(), k, None, seed)?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            g,
            mixtures,
            delta: DeltaScore::new(rows)?,
        })
    }

    /// (name, denoiser) pairs: `gaussian`, `gmm-K` …, `delta`.
    pub fn list(&self) -> Vec<(String, &dyn Denoiser<4>)> {
        let mut v: Vec<(String, &dyn Denoiser<4>)> = vec![("gaussian".into(), &self.g)];
        for (k, m) in &self.mixtures {
            v.push((format!("gmm-{k}"), m));
        }
        v.push(("delta".into(), &self.delta));
        v
    }
}

/// [`ev_table`] on `probes` evenly spaced images of the training and the held-out set.
#[allow(clippy::too_many_arguments)]
fn ev_on_probes(
    den: &dyn Denoiser<4>,
    approx: &[(String, &dyn Denoiser<4>)],
    train: &score_io::images::ImageDataset,
    held: &score_io::images::ImageDataset,
    probes: usize,
    sigmas: &[f64],
    seed: u64,
    device: &Device,
) -> Result<Vec<EvRow>> {
    let mut all = Vec::new();
    for (name, set) in [("train", train), ("heldout", held)] {
        let m = probes.min(set.num_images());
        let idx: Vec<usize> = (0..m).map(|i| i * set.num_images() / m).collect();
        let (x0, _) = set.batch(&idx, device);
        all.extend(ev_table(den, approx, x0, name, sigmas, seed, None)?);
    }
    Ok(all)
}

/// One checkpoint's EV rows in [`ev_over_training`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainingEv {
    /// Training step of the checkpoint.
    pub step: usize,
    /// Its EV rows.
    pub rows: Vec<EvRow>,
}

/// The paper's second claim ("the Gaussian approximation is learned early in training"):
/// EV of the Gaussian, the mixtures and the delta mixture against each checkpoint of a
/// training run, on the same probes and noise for every checkpoint. Writes
/// `ev_training.json`, `ev_training.md` and `ev_training_<approx>.svg` (score EV on
/// held-out probes against the step, one line per σ) under `out`.
#[allow(clippy::too_many_arguments)]
pub fn ev_over_training(
    checkpoints: &[std::path::PathBuf],
    sigmas: &[f64],
    components: &[usize],
    probes: usize,
    seed: u64,
    out: &Path,
    device: &Device,
    mut progress: impl FnMut(&str),
) -> Result<Vec<TrainingEv>> {
    let (train, held) = pipeline::demo_split()?;
    let fits = Approximations::fit(&train, components, seed)?;
    let approx = fits.list();
    let mut runs = Vec::new();
    for ck in checkpoints {
        let (net, _, precond, meta) = pipeline::load_image_net(ck, device)?;
        let den = Preconditioned::new(&net, precond);
        let rows = ev_on_probes(&den, &approx, &train, &held, probes, sigmas, seed, device)?;
        progress(&format!("step {}: {} EV rows", meta.step, rows.len()));
        runs.push(TrainingEv {
            step: meta.step,
            rows,
        });
    }
    runs.sort_by_key(|r| r.step);
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let json = serde_json::json!({"checkpoints": checkpoints, "probes": probes, "seed": seed, "runs": runs});
    write(
        &out.join("ev_training.json"),
        &serde_json::to_string_pretty(&json).expect("serialises"),
    )?;
    let names: Vec<String> = approx.iter().map(|(n, _)| n.clone()).collect();
    write(
        &out.join("ev_training.md"),
        &training_markdown(&runs, &names, sigmas),
    )?;
    for n in &names {
        training_plot(&runs, n, sigmas, &out.join(format!("ev_training_{n}.svg")))?;
    }
    Ok(runs)
}

fn ev_at<'a>(run: &'a TrainingEv, approx: &str, probes: &str, sigma: f64) -> Option<&'a EvRow> {
    run.rows
        .iter()
        .find(|r| r.approx == approx && r.probes == probes && r.sigma == sigma)
}

/// Score EV on held-out probes: one table per approximation, steps down, σ across.
fn training_markdown(runs: &[TrainingEv], names: &[String], sigmas: &[f64]) -> String {
    let mut md = String::new();
    for n in names {
        md += &format!("\n**{n}**: score EV (held-out probes) of each checkpoint\n\n| step |");
        for s in sigmas {
            md += &format!(" σ = {s} |");
        }
        md += "\n|---:|";
        md += &"---:|".repeat(sigmas.len());
        md += "\n";
        for r in runs {
            md += &format!("| {} |", r.step);
            for &s in sigmas {
                md += &ev_at(r, n, "heldout", s)
                    .map_or(" – |".into(), |e| format!(" {:.4} |", e.score_ev));
            }
            md += "\n";
        }
    }
    md
}

fn training_plot(runs: &[TrainingEv], approx: &str, sigmas: &[f64], path: &Path) -> Result<()> {
    let series = sigmas
        .iter()
        .map(|&s| Series {
            label: format!("σ = {s}"),
            points: runs
                .iter()
                .filter_map(|r| ev_at(r, approx, "heldout", s).map(|e| (r.step as f64, e.score_ev)))
                .collect(),
            markers_only: false,
        })
        .collect();
    Plot {
        title: format!("Score EV of {approx} against training step (held-out probes)"),
        x_label: "training step".into(),
        y_label: "explained variance (score)".into(),
        log_x: true,
        log_y: false,
        series,
        y_range: Some((-0.2, 1.02)),
    }
    .save(path)?;
    Ok(())
}

/// The EV rows as a markdown table (score EV / denoiser EV per approximation).
pub fn ev_markdown(rows: &[EvRow], names: &[String], sigmas: &[f64]) -> String {
    let mut md = String::from("| σ | probes |");
    for n in names {
        md += &format!(" {n}: score / denoiser |");
    }
    md += "\n|---:|---|";
    md += &"---|".repeat(names.len());
    md += "\n";
    for probes in ["train", "heldout"] {
        for &s in sigmas {
            md += &format!("| {s} | {probes} |");
            for n in names {
                if let Some(r) = rows
                    .iter()
                    .find(|r| r.sigma == s && r.probes == probes && &r.approx == n)
                {
                    md += &format!(" {:.4} / {:.4} |", r.score_ev, r.denoiser_ev);
                }
            }
            md += "\n";
        }
    }
    md
}

/// One row of the teleportation sweep.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TeleportRow {
    /// Sampler name.
    pub sampler: String,
    /// σ levels N of the grid.
    pub steps: usize,
    /// Steps skipped.
    pub k: usize,
    /// σ teleported to.
    pub sigma_k: f64,
    /// Network evaluations per sample.
    pub nfe: usize,
    /// Fraction of the un-teleported run's evaluations saved.
    pub nfe_saved: f64,
    /// Wall time for all images (seconds).
    pub seconds: f64,
    /// Fréchet distance to the held-out images on their top-32 PCA features.
    pub fd_pca32: f64,
    /// Sliced W2 to the held-out images (pixel space).
    pub sliced_w2: f64,
    /// RMS pixel distance to the same sampler's un-teleported samples from the same noise.
    pub rms_to_k0: f64,
    /// FID (FID Inception-v3) against the held-out images with its bootstrap standard
    /// error, when the sweep was given the network and reference.
    pub fid: Option<score_eval::fid::FidEstimate>,
}

/// FID network and held-out reference for [`teleport_sweep`].
pub type FidSetup<'a> = (
    &'a score_eval::fid::FidInception,
    &'a score_eval::fid::FidReference,
);

/// The output of [`teleport_sweep`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct TeleportReport {
    /// All rows.
    pub rows: Vec<TeleportRow>,
    /// The skip chosen by [`auto_skip`] per sampler grid, and the EV curve it read.
    pub auto_k: usize,
    /// The EV per grid level that the automatic rule read.
    pub auto_ev: Vec<f64>,
    /// The threshold of the automatic rule.
    pub auto_threshold: f64,
    /// FD-PCA32 between an equally large set of training images and the held-out images.
    pub fd_pca32_real_floor: f64,
    /// Sliced W2 between the same two real sets.
    pub sliced_w2_real_floor: f64,
}

/// Sweep the skip k for each (sampler, N) with `n` images (fixed noise), measuring NFE,
/// wall time, FD on PCA-32 features and sliced W2 against the held-out images, and the RMS
/// distance to k = 0. Writes `teleport.json`, `teleport.md` and `teleport_fd.svg`.
#[allow(clippy::too_many_arguments)]
pub fn teleport_sweep(
    checkpoint: &Path,
    samplers: &[(Sampler, usize)],
    ks: &[usize],
    n: usize,
    batch: usize,
    threshold: f64,
    seed: u64,
    out: &Path,
    device: &Device,
    fid: Option<FidSetup>,
    mut progress: impl FnMut(&TeleportRow),
) -> Result<TeleportReport> {
    let (net, [ch, h, w], precond, _) = pipeline::load_image_net(checkpoint, device)?;
    let (train, held) = pipeline::demo_split()?;
    let d = ch * h * w;
    let g = GaussianScore::fit(rows_of(train.rows_f64(), d).view(), None)?;
    let held = HeldOut::new(held.rows_f64(), d)?;
    let (fd_floor, sw_floor) =
        held.distances(&train.rows_f64()[..n.min(train.num_images()) * d])?;
    let den = Preconditioned::new(&net, precond);
    let noise: Vec<f32> = score_core::tensor::to_vec_f32(randn(
        [n * d],
        &mut stream_rng(seed, 0x5445_4c45, 0),
        device,
    ))?;
    let sweep = Sweep {
        den: &den,
        g: &g,
        noise: &noise,
        batch,
        shape: [ch, h, w],
        device,
        held: &held,
        fid,
        seed,
    };
    let mut rows = Vec::new();
    let (mut auto_k, mut auto_ev) = (0, Vec::new());
    for (si, (sampler, steps)) in samplers.iter().enumerate() {
        let sigmas = karras_sigmas(*steps, 0.002, 80.0, 7.0)?;
        if si == 0 {
            // The automatic skip, calibrated on the first 16 noises at the first grid.
            let m = 16.min(n);
            let probes = from_f32(noise[..m * d].to_vec(), [m, ch, h, w], device);
            let a = auto_skip(
                &den,
                &g,
                &sigmas,
                probes.mul_scalar(sigmas[0]),
                threshold,
                None,
            )?;
            (auto_k, auto_ev) = (a.k, a.evs);
        }
        let mut base: Option<Vec<f64>> = None;
        for &k in ks.iter().filter(|&&k| k + 1 < sigmas.len()) {
            let row = sweep.row(sampler, &sigmas, k, &mut base)?;
            progress(&row);
            rows.push(row);
        }
    }
    let report = TeleportReport {
        rows,
        auto_k,
        auto_ev,
        auto_threshold: threshold,
        fd_pca32_real_floor: fd_floor,
        sliced_w2_real_floor: sw_floor,
    };
    write_teleport_report(&report, samplers, n, out)?;
    Ok(report)
}

/// What every configuration of a teleportation sweep shares.
struct Sweep<'a> {
    den: &'a dyn Denoiser<4>,
    g: &'a GaussianScore,
    noise: &'a [f32],
    batch: usize,
    shape: [usize; 3],
    device: &'a Device,
    held: &'a HeldOut,
    fid: Option<FidSetup<'a>>,
    seed: u64,
}

impl Sweep<'_> {
    /// One row: `sampler` on `sigmas` teleported to index `k`, measured; `base` holds
    /// the samples of k = 0 (set when k = 0) for the RMS column.
    fn row(
        &self,
        sampler: &Sampler,
        sigmas: &[f64],
        k: usize,
        base: &mut Option<Vec<f64>>,
    ) -> Result<TeleportRow> {
        let t0 = Instant::now();
        let (samples, nfe) = teleport_batches(
            self.den,
            self.g,
            sampler,
            sigmas,
            self.noise,
            k,
            self.batch,
            self.shape,
            self.device,
        )?;
        let seconds = t0.elapsed().as_secs_f64();
        let rms = base.as_ref().map_or(0.0, |b0| rms_distance(b0, &samples));
        if k == 0 {
            *base = Some(samples.clone());
        }
        let [ch, h, w] = self.shape;
        let n = samples.len() / (ch * h * w);
        let fid = sample_fid(self.fid, &samples, [n, ch, h, w], self.seed)?;
        let (fd_pca32, sliced_w2) = self.held.distances(&samples)?;
        Ok(TeleportRow {
            fid,
            sampler: sampler.name().into(),
            steps: sigmas.len() - 1,
            k,
            sigma_k: sigmas[k],
            nfe,
            nfe_saved: 1.0 - nfe as f64 / sampler.nfe(sigmas.len(), 0) as f64,
            seconds,
            fd_pca32,
            sliced_w2,
            rms_to_k0: rms,
        })
    }
}

/// The held-out images as the sweep measures against them: rows, their PCA-32 basis
/// and features.
struct HeldOut {
    rows: Vec<f64>,
    d: usize,
    mean: Vec<f64>,
    basis: Vec<f64>,
    feats: Vec<f64>,
}

impl HeldOut {
    fn new(rows: Vec<f64>, d: usize) -> Result<Self> {
        let (mean, basis) = pca_basis(&rows, d, 32)?;
        let feats = pca_project(&rows, d, &mean, &basis);
        Ok(Self {
            rows,
            d,
            mean,
            basis,
            feats,
        })
    }

    /// FD on PCA-32 features and sliced W2 of the rows `x` against the held-out images.
    fn distances(&self, x: &[f64]) -> Result<(f64, f64)> {
        let f = pca_project(x, self.d, &self.mean, &self.basis);
        Ok((
            frechet_distance(&f, &self.feats, 32)?,
            sliced_w2(x, &self.rows, self.d, 128, 0)?,
        ))
    }
}

/// The root-mean-square difference of two equally long arrays.
fn rms_distance(a: &[f64], b: &[f64]) -> f64 {
    (a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / b.len() as f64).sqrt()
}

/// FID of `samples` (shape `[n, c, h, w]`, range [−1, 1]) when the FID network is set up.
fn sample_fid(
    fid: Option<FidSetup>,
    samples: &[f64],
    shape: [usize; 4],
    seed: u64,
) -> Result<Option<score_eval::FidEstimate>> {
    let Some((net, reference)) = fid else {
        return Ok(None);
    };
    let v: Vec<f32> = samples.iter().map(|&x| x as f32).collect();
    let bytes = score_eval::fid::quantize_signed(&v)?;
    let f = net.features(&bytes, shape, 16, |_| {})?;
    Ok(Some(reference.estimate(&f, 200, seed)?))
}

/// Sample `noise` (row-major `[n, c, h, w]`, unit variance) in batches of `batch`
/// with teleportation to index `k`; returns the samples and the NFE per sample.
#[allow(clippy::too_many_arguments)]
fn teleport_batches<M: Denoiser<4> + ?Sized>(
    den: &M,
    g: &GaussianScore,
    sampler: &Sampler,
    sigmas: &[f64],
    noise: &[f32],
    k: usize,
    batch: usize,
    [ch, h, w]: [usize; 3],
    device: &Device,
) -> Result<(Vec<f64>, usize)> {
    let d = ch * h * w;
    let n = noise.len() / d;
    let mut samples = Vec::with_capacity(n * d);
    let mut nfe = 0;
    for start in (0..n).step_by(batch) {
        let b = batch.min(n - start);
        let x_t = from_f32(
            noise[start * d..(start + b) * d].to_vec(),
            [b, ch, h, w],
            device,
        )
        .mul_scalar(sigmas[0]);
        let o = teleport_sample(den, g, sampler, sigmas, x_t, k, &mut SampleContext::new())?;
        nfe = o.nfe;
        samples.extend(to_vec_f64(o.x)?);
    }
    Ok((samples, nfe))
}

/// `teleport.json`, `teleport.md` and the two figures of a sweep over `samplers`
/// (`n` images per configuration).
fn write_teleport_report(
    report: &TeleportReport,
    samplers: &[(Sampler, usize)],
    n: usize,
    out: &Path,
) -> Result<()> {
    let (fd_floor, sw_floor, threshold) = (
        report.fd_pca32_real_floor,
        report.sliced_w2_real_floor,
        report.auto_threshold,
    );
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    write(
        &out.join("teleport.json"),
        &serde_json::to_string_pretty(report).expect("serialises"),
    )?;
    let mut md = String::from(
        "| sampler | N | k | σ_k | NFE | NFE saved | FD-PCA32 ↓ | sliced W2 ↓ | RMS to k=0 | FID ± s.e. ↓ | time (s) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &report.rows {
        let fid = r.fid.map_or("–".to_string(), |f| {
            format!("{:.2} ± {:.2}", f.fid, f.std_error)
        });
        md += &format!(
            "| {} | {} | {} | {:.3} | {} | {:.0}% | {:.2} | {:.4} | {:.4} | {fid} | {:.1} |\n",
            r.sampler,
            r.steps,
            r.k,
            r.sigma_k,
            r.nfe,
            100.0 * r.nfe_saved,
            r.fd_pca32,
            r.sliced_w2,
            r.rms_to_k0,
            r.seconds
        );
    }
    md += &format!(
        "\nReal-vs-real floor ({n} training images vs the held-out images): FD-PCA32 {:.2}, sliced W2 {:.4}. Automatic skip (EV threshold {threshold}): k = {}.\n",
        fd_floor, sw_floor, report.auto_k
    );
    write(&out.join("teleport.md"), &md)?;
    teleport_plots(report, samplers, out)
}

/// The sweep's figures: FD against NFE, and each sample's change against steps saved.
fn teleport_plots(
    report: &TeleportReport,
    samplers: &[(Sampler, usize)],
    out: &Path,
) -> Result<()> {
    let fd_floor = report.fd_pca32_real_floor;
    let mut fd_series = Vec::new();
    let mut rms_series = Vec::new();
    for (sampler, steps) in samplers {
        let pts: Vec<&TeleportRow> = report
            .rows
            .iter()
            .filter(|r| r.sampler == sampler.name() && r.steps == *steps)
            .collect();
        fd_series.push(Series {
            label: format!("{} N={steps}", sampler.name()),
            points: pts.iter().map(|r| (r.nfe as f64, r.fd_pca32)).collect(),
            markers_only: false,
        });
        rms_series.push(Series {
            label: format!("{} N={steps}", sampler.name()),
            points: pts
                .iter()
                .filter(|r| r.k > 0)
                .map(|r| (100.0 * r.nfe_saved, r.rms_to_k0))
                .collect(),
            markers_only: false,
        });
    }
    fd_series.push(Series {
        label: "real floor".into(),
        points: vec![
            (
                report.rows.iter().map(|r| r.nfe).min().unwrap_or(1) as f64,
                fd_floor,
            ),
            (
                report.rows.iter().map(|r| r.nfe).max().unwrap_or(2) as f64,
                fd_floor,
            ),
        ],
        markers_only: false,
    });
    Plot {
        title: "Teleportation: sample quality vs network evaluations".into(),
        x_label: "NFE per sample".into(),
        y_label: "FD on PCA-32 features (↓)".into(),
        log_x: false,
        log_y: false,
        series: fd_series,
        y_range: None,
    }
    .save(&out.join("teleport_fd.svg"))?;
    Plot {
        title: "Teleportation: change of each sample vs steps saved".into(),
        x_label: "% of network evaluations saved".into(),
        y_label: "RMS pixel distance to k = 0".into(),
        log_x: false,
        log_y: false,
        series: rms_series,
        y_range: None,
    }
    .save(&out.join("teleport_rms.svg"))?;
    Ok(())
}

/// One (sampler, k) row of [`teleport_seed_summary`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct TeleportSeedRow {
    /// Sampler name.
    pub sampler: String,
    /// Steps skipped.
    pub k: usize,
    /// Network evaluations.
    pub nfe: usize,
    /// FID per seed (in the order of the reports).
    pub fid: Vec<f64>,
    /// Mean FID over seeds with a 95 % bootstrap interval over seeds.
    pub fid_mean: (f64, f64, f64),
    /// FID(k) − FID(k = 0) per seed: paired, the same noise for every k of a seed.
    pub delta: Vec<f64>,
    /// Mean of the paired differences with a 95 % bootstrap interval over seeds.
    pub delta_mean: (f64, f64, f64),
    /// Mean over seeds of FID's own bootstrap standard error (over the scored images).
    pub fid_std_error: f64,
    /// Mean FD-PCA32 over seeds.
    pub fd_pca32: f64,
}

/// Combine teleport sweeps of several seeds (same samplers, grids and ks; with FID) into
/// per-(sampler, k) means, paired differences to k = 0, and bootstrap intervals over the
/// seeds. Rows without FID are skipped.
pub fn teleport_seed_summary(reports: &[TeleportReport]) -> Vec<TeleportSeedRow> {
    use score_core::metrics::mean_interval;
    let Some(first) = reports.first() else {
        return Vec::new();
    };
    let fid_of = |rep: &TeleportReport, sampler: &str, k: usize| {
        rep.rows
            .iter()
            .find(|r| r.sampler == sampler && r.k == k)
            .and_then(|r| r.fid.as_ref().map(|f| (f.fid, f.std_error, r.fd_pca32)))
    };
    first
        .rows
        .iter()
        .filter_map(|row| {
            let per: Vec<(f64, f64, f64)> = reports
                .iter()
                .map(|rep| fid_of(rep, &row.sampler, row.k))
                .collect::<Option<_>>()?;
            let base: Vec<f64> = reports
                .iter()
                .map(|rep| fid_of(rep, &row.sampler, 0).map(|v| v.0))
                .collect::<Option<_>>()?;
            let fid: Vec<f64> = per.iter().map(|v| v.0).collect();
            let delta: Vec<f64> = fid.iter().zip(&base).map(|(a, b)| a - b).collect();
            let n = per.len() as f64;
            Some(TeleportSeedRow {
                sampler: row.sampler.clone(),
                k: row.k,
                nfe: row.nfe,
                fid_mean: mean_interval(&fid, 2000, 0),
                delta_mean: mean_interval(&delta, 2000, 0),
                fid_std_error: per.iter().map(|v| v.1).sum::<f64>() / n,
                fd_pca32: per.iter().map(|v| v.2).sum::<f64>() / n,
                fid,
                delta,
            })
        })
        .collect()
}

/// [`teleport_seed_summary`] as a markdown table.
pub fn teleport_seed_markdown(rows: &[TeleportSeedRow], seeds: &[u64], n: usize) -> String {
    let mut md = format!(
        "Seeds {seeds:?}, {n} images per row and seed (the same noise for every k of a seed). FID against the 1 000 held-out images; mean over seeds with a 95 % bootstrap interval over seeds (2 000 resamples; with few seeds the interval is close to the range); ΔFID = FID(k) − FID(k = 0), paired within a seed; SE = FID's own bootstrap standard error over the scored images, mean over seeds.\n\n| sampler | k | NFE | FID per seed | mean FID [95 %] | ΔFID vs k = 0 [95 %] | SE | FD-PCA32 |\n|---|---:|---:|---|---|---|---:|---:|\n"
    );
    for r in rows {
        let per: Vec<String> = r.fid.iter().map(|v| format!("{v:.1}")).collect();
        md += &format!(
            "| {} | {} | {} | {} | {:.1} [{:.1}, {:.1}] | {:+.1} [{:+.1}, {:+.1}] | {:.1} | {:.2} |\n",
            r.sampler,
            r.k,
            r.nfe,
            per.join(", "),
            r.fid_mean.0,
            r.fid_mean.1,
            r.fid_mean.2,
            r.delta_mean.0,
            r.delta_mean.1,
            r.delta_mean.2,
            r.fid_std_error,
            r.fd_pca32
        );
    }
    md
}
