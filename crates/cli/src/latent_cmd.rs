//! `scorelab musicscore train-ae | evaluate-ae`: the autoencoder of the latent
//! text-to-score model (`musicscore_gen::autoencoder`, `musicscore_gen::latent`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use musicscore_data::prompt::Template;
use musicscore_gen::autoencoder::{AutoencoderConfig, LatentRecord};
use musicscore_gen::generator::TextConfig;
use musicscore_gen::latent::{
    AeData, AeSettings, TrainedAe, decode_latents, encode_means, latent_scale, load_autoencoder,
    psnr, train_autoencoder,
};
use musicscore_gen::textscore::{Geometry, Reading, SystemItem};
use score_core::burn::tensor::Device;
use score_train::checkpoint::CheckpointFile;
use score_train::train::{TrainConfig, TrainOutput};
use serde_json::json;

use crate::common::{Common, device, emit, fixed_on_resume, open_run};
use crate::corpus_args::{FilterArgs, RootArgs};
use crate::systems::{load_items, parse_geometry};

/// The whole-system geometry: the full width of a page at half of 100 dpi (827 px →
/// 414) on a 416-px canvas, 128 rows (a four-staff quartet system is about 122).
pub const SYSTEM_GEOMETRY: &str = "416x128@0.5";

#[derive(Args)]
pub struct TrainAeArgs {
    #[command(flatten)]
    root: RootArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Output folder (checkpoint.safetensors, train.jsonl).
    #[arg(long, default_value = "out/musicscore-ae")]
    out: PathBuf,
    /// Total optimisation steps (on --resume, a larger number continues the run).
    #[arg(long, default_value_t = 1500)]
    steps: usize,
    /// Minibatch size [default: 8; fixed on --resume].
    #[arg(long)]
    batch: Option<usize>,
    /// Training window width in pixels, a multiple of 4 [default: 128; fixed on --resume].
    #[arg(long)]
    crop: Option<usize>,
    /// System geometry W×H@scale [default: 416x128@0.5; fixed on --resume].
    #[arg(long)]
    geometry: Option<String>,
    /// Weight of the KL term [default: 1e-6, Stable Diffusion's; fixed on --resume].
    #[arg(long)]
    kl_weight: Option<f64>,
    /// Latent channels [default: 4; fixed on --resume].
    #[arg(long)]
    latent_channels: Option<usize>,
    /// Continue the run in --out.
    #[arg(long)]
    resume: bool,
    /// Replace a run in --out.
    #[arg(long)]
    overwrite: bool,
}

/// Adam at 1e-3 after 100 warm-up steps, no clipping, a checkpoint every 100 steps.
fn ae_train_config(steps: usize, batch: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: batch,
        lr: 1e-3,
        warmup_steps: 100.min(steps / 4 + 1),
        grad_clip: None,
        checkpoint_every: 100,
        log_every: 10,
        seed,
        ..TrainConfig::default()
    }
}

/// The settings of a run: the flags' (with defaults) for a new one, the checkpoint's
/// on resume (a restated flag must agree).
fn ae_settings(
    c: &Common,
    a: &TrainAeArgs,
    resume: Option<&score_train::checkpoint::CheckpointFile>,
    ck_path: &Path,
) -> Result<(Geometry, AeSettings, usize, u64)> {
    let geometry = parse_geometry(a.geometry.as_deref().unwrap_or(SYSTEM_GEOMETRY))?;
    let fresh = AeSettings {
        autoencoder: AutoencoderConfig::new().with_latent_channels(a.latent_channels.unwrap_or(4)),
        crop: a.crop.unwrap_or(128),
        kl_weight: a.kl_weight.unwrap_or(1e-6),
        image: [geometry.height, geometry.width],
        corpus: String::new(),
        systems: 0,
    };
    let Some(ck) = resume else {
        return Ok((geometry, fresh, a.batch.unwrap_or(8), c.seed()));
    };
    let old = load_autoencoder(ck_path, &score_core::burn::tensor::Device::flex())?.settings;
    let g = Geometry {
        scale: geometry.scale,
        height: old.image[0],
        width: old.image[1],
    };
    let g = fixed_on_resume(
        "--geometry",
        a.geometry.as_ref().map(|_| geometry),
        g,
        ck_path,
    )?;
    let s = AeSettings {
        crop: fixed_on_resume("--crop", a.crop, old.crop, ck_path)?,
        kl_weight: fixed_on_resume("--kl-weight", a.kl_weight, old.kl_weight, ck_path)?,
        autoencoder: AutoencoderConfig::new().with_latent_channels(fixed_on_resume(
            "--latent-channels",
            a.latent_channels,
            old.autoencoder.latent_channels,
            ck_path,
        )?),
        ..old
    };
    let train = ck
        .meta
        .config
        .get("train")
        .and_then(|t| serde_json::from_value::<TrainConfig>(t.clone()).ok());
    let batch = train.map_or(8, |t| t.batch_size);
    let batch = fixed_on_resume("--batch", a.batch, batch, ck_path)?;
    let seed = fixed_on_resume("--seed", c.seed_arg, ck.meta.seed, ck_path)?;
    Ok((g, s, batch, seed))
}

/// Refuse, before any page is read, a geometry or batch whose training step cannot
/// fit: one system image, and per window of the batch three times the UNet estimate
/// (`unet_pass_bytes`) at the window's size and the encoder's top width.
fn ensure_ae_training_fits(g: &Geometry, s: &AeSettings, batch: usize) -> Result<()> {
    let top = s.autoencoder.widths.last().copied().unwrap_or(1);
    let window = 3 * crate::common::unet_pass_bytes([1, g.height, s.crop], top);
    let system = (g.height as u128) * (g.width as u128) * 4;
    score_core::limits::ensure_fits(
        "--geometry/--crop/--batch",
        system.saturating_add((batch.max(1) as u128).saturating_mul(window)),
        "use a smaller --geometry, --crop or --batch",
    )?;
    Ok(())
}

pub fn cmd_train_ae(c: &Common, a: &TrainAeArgs) -> Result<()> {
    let dev = device(&c.device)?.autodiff();
    let (ck_path, resume, _lock) = open_run(&a.out, a.resume, a.overwrite)?;
    let (g, mut settings, batch, seed) = ae_settings(c, a, resume.as_ref(), &ck_path)?;
    settings.check([g.height, g.width])?;
    ensure_ae_training_fits(&g, &settings, batch)?;
    let mut filter = a.filter.clone();
    filter.split.get_or_insert_with(|| "train".into());
    let (items, tall, corpus) = load_items(&a.root, &filter, &g, &Template::default(), c.json)?;
    if resume.is_some() && settings.systems != items.len() {
        bail!(
            "--root: {} was trained on {} systems, these pages give {}: resume on the same data",
            ck_path.display(),
            settings.systems,
            items.len()
        );
    }
    settings.corpus = corpus;
    settings.systems = items.len();
    if !c.json {
        eprintln!(
            "{} systems ({tall} too tall left out) at {g}; {}",
            items.len(),
            settings.corpus
        );
    }
    let images: Vec<Vec<f32>> = items.into_iter().map(|i| i.pixels).collect();
    let data = AeData {
        images: &images,
        image: [g.height, g.width],
    };
    let cfg = ae_train_config(a.steps, batch, seed);
    dev.seed(seed);
    let out = TrainOutput {
        checkpoint: Some(ck_path.clone()),
        log: Some(a.out.join("train.jsonl")),
        progress: !c.json,
        stop_after: None,
        keep_checkpoints: false,
    };
    let t0 = Instant::now();
    let (ae, last) = train_autoencoder(&data, &settings, &cfg, &out, resume.as_ref(), &dev)?;
    let secs = t0.elapsed().as_secs_f64();
    let per_px = last / (g.height * settings.crop) as f64;
    emit(
        c.json,
        json!({"checkpoint": ck_path, "step": ae.step, "l1": last, "l1_per_pixel": per_px, "seconds": secs}),
        || {
            outln!(
                "step {} L1/pixel {per_px:.4} in {secs:.0} s; checkpoint {}",
                ae.step,
                ck_path.display()
            )
        },
    );
    Ok(())
}

#[derive(Args)]
pub struct EvaluateAeArgs {
    /// A checkpoint of `scorelab musicscore train-ae`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Held-out pages (default split: test).
    #[command(flatten)]
    root: RootArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Systems in the grid of originals above reconstructions.
    #[arg(long, default_value_t = 6)]
    grid: usize,
    /// Output folder (reconstruction.json, reconstruction.png).
    #[arg(long, default_value = "out/musicscore-ae-eval")]
    out: PathBuf,
}

/// The measures of one set of systems and their reconstructions.
#[derive(Default)]
struct Agreement {
    n: usize,
    psnr: Vec<f64>,
    staves_read: usize,
    staves_same: usize,
    keys_read: usize,
    keys_same: usize,
}

impl Agreement {
    fn add(&mut self, a: &[f32], b: &[f32], g: &Geometry) {
        let (ra, rb) = (
            Reading::of(a, g.width, g.height),
            Reading::of(b, g.width, g.height),
        );
        self.n += 1;
        self.psnr.push(psnr(a, b));
        if ra.staves.is_some() {
            self.staves_read += 1;
            self.staves_same += (rb.staves == ra.staves) as usize;
        }
        if ra.fifths.is_some() {
            self.keys_read += 1;
            self.keys_same += (rb.fifths == ra.fifths) as usize;
        }
    }
}

pub fn cmd_evaluate_ae(c: &Common, a: &EvaluateAeArgs) -> Result<()> {
    let dev = device(&c.device)?;
    let ae = load_autoencoder(&a.checkpoint, &dev)?;
    let [h, w] = ae.settings.image;
    let g = Geometry {
        scale: parse_geometry(SYSTEM_GEOMETRY)?.scale,
        height: h,
        width: w,
    };
    let mut filter = a.filter.clone();
    filter.split.get_or_insert_with(|| "test".into());
    let (items, _, corpus) = load_items(&a.root, &filter, &g, &Template::default(), c.json)?;
    let images: Vec<Vec<f32>> = items.iter().map(|i| i.pixels.clone()).collect();
    let t0 = Instant::now();
    let z = encode_means(&ae.net, &images, [h, w], &dev)?;
    let f = ae.settings.autoencoder.factor();
    let latent = [ae.settings.autoencoder.latent_channels, h / f, w / f];
    let flat: Vec<f32> = z.iter().flatten().copied().collect();
    let rec = decode_latents(&ae.net, &flat, latent, &dev)?;
    let secs = t0.elapsed().as_secs_f64();
    let mut m = Agreement::default();
    for (i, x) in images.iter().enumerate() {
        m.add(x, &rec[i * h * w..(i + 1) * h * w], &g);
    }
    std::fs::create_dir_all(&a.out)?;
    let png = a.out.join("reconstruction.png");
    let k = a.grid.min(images.len()).max(1);
    let mut grid: Vec<f32> = images[..k].iter().flatten().copied().collect();
    grid.extend_from_slice(&rec[..k * h * w]);
    score_io::image::write_image_grid(&png, &grid, [2 * k, 1, h, w], k.min(2))?;
    let mut sorted = m.psnr.clone();
    sorted.sort_by(f64::total_cmp);
    let mean_psnr = m.psnr.iter().sum::<f64>() / m.n.max(1) as f64;
    let report = json!({
        "checkpoint": a.checkpoint, "step": ae.step, "corpus": corpus, "systems": m.n,
        "psnr_mean_db": mean_psnr, "psnr_median_db": sorted.get(sorted.len() / 2),
        "psnr_min_db": sorted.first(),
        "staves_read_on_input": m.staves_read, "staves_same_on_reconstruction": m.staves_same,
        "keys_read_on_input": m.keys_read, "keys_same_on_reconstruction": m.keys_same,
        "latent": latent, "seconds": secs, "png": png,
    });
    score_core::fs::write_atomic(
        &a.out.join("reconstruction.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    emit(c.json, report, || {
        outln!(
            "{} systems: PSNR {mean_psnr:.2} dB mean; staves kept {}/{}, key signatures kept {}/{}; {}",
            m.n,
            m.staves_same,
            m.staves_read,
            m.keys_same,
            m.keys_read,
            png.display()
        )
    });
    Ok(())
}

/// The autoencoder of a latent `musicscore train` run and its file's bytes: the one
/// `--autoencoder` names for a new run; on resume the one beside the checkpoint
/// (`--autoencoder`, if restated, must be the same file content).
pub struct RunAutoencoder {
    ae: TrainedAe,
    bytes: Vec<u8>,
}

/// The file name a latent model's autoencoder has beside its checkpoint.
pub const AUTOENCODER_FILE: &str = "autoencoder.safetensors";

pub fn run_autoencoder(
    flag: Option<&Path>,
    resume: Option<&CheckpointFile>,
    ck_path: &Path,
    dev: &Device,
) -> Result<Option<RunAutoencoder>> {
    let stored = match resume {
        Some(ck) => ck.meta.config_as::<TextConfig>(ck_path)?.extra.text.latent,
        None => None,
    };
    let path = match (&stored, flag) {
        (Some(l), _) => ck_path.with_file_name(&l.file),
        (None, Some(p)) if resume.is_none() => p.to_path_buf(),
        (None, Some(_)) => bail!(
            "--autoencoder: {} is a pixel-space run, and --resume cannot change it (start a new run in another --out)",
            ck_path.display()
        ),
        (None, None) => return Ok(None),
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    if let (Some(l), Some(p)) = (&stored, flag) {
        let given = score_core::fs::sha256_hex(&std::fs::read(p)?);
        if given != l.sha256 {
            bail!(
                "--autoencoder {}: {} was trained with another autoencoder (SHA-256 {}), and --resume cannot change it",
                p.display(),
                ck_path.display(),
                l.sha256
            );
        }
    }
    let ae = load_autoencoder(&path, dev)?;
    Ok(Some(RunAutoencoder { ae, bytes }))
}

/// A latent run's geometry: the autoencoder's image size, at `--geometry`'s scale
/// (default 0.5); a `--geometry` of another size is refused.
pub fn latent_geometry(
    r: &RunAutoencoder,
    given: Option<Geometry>,
    current: Geometry,
) -> Result<Geometry> {
    let [h, w] = r.ae.settings.image;
    if let Some(g) = given
        && (g.height, g.width) != (h, w)
    {
        bail!(
            "--geometry {g}: the autoencoder was trained on {w}x{h} systems; a latent model has its autoencoder's geometry"
        );
    }
    Ok(Geometry {
        scale: given.map_or(current.scale, |g| g.scale),
        height: h,
        width: w,
    })
}

/// Replace the systems' pixels by their scaled latents (posterior means times one
/// over their standard deviation), write the autoencoder beside the checkpoint, and
/// describe it for the model's record.
pub fn to_latents(
    r: &RunAutoencoder,
    items: &mut [SystemItem],
    g: &Geometry,
    ck_path: &Path,
    dev: &Device,
) -> Result<LatentRecord> {
    let images: Vec<Vec<f32>> = items.iter().map(|i| i.pixels.clone()).collect();
    let z = encode_means(&r.ae.net, &images, [g.height, g.width], dev)?;
    let scale = latent_scale(&z);
    for (item, z) in items.iter_mut().zip(z) {
        item.pixels = z.into_iter().map(|v| (v as f64 * scale) as f32).collect();
    }
    let beside = ck_path.with_file_name(AUTOENCODER_FILE);
    let same = std::fs::read(&beside).is_ok_and(|b| b == r.bytes);
    if !same {
        score_core::fs::write_atomic(&beside, &r.bytes)?;
    }
    Ok(LatentRecord {
        file: AUTOENCODER_FILE.into(),
        sha256: score_core::fs::sha256_hex(&r.bytes),
        config: r.ae.settings.autoencoder.clone(),
        scale,
    })
}
