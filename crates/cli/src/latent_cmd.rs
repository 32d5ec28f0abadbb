//! `scorelab musicscore train-ae | evaluate-ae`: the autoencoder of the latent
//! text-to-score model (`musicscore_gen::autoencoder`, `musicscore_gen::latent`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use musicscore_data::prompt::Template;
use musicscore_gen::latent::{decode_latents, encode_means, load_autoencoder, psnr};
use musicscore_gen::run::{AeRunSpec, SYSTEM_GEOMETRY, train_ae};
use musicscore_gen::textscore::{Geometry, Reading};
use score_train::run::RunMode;
use serde_json::json;

use crate::common::{Common, device, emit};
use crate::corpus_args::{FilterArgs, RootArgs};
use crate::feedback::Bars;
use crate::systems::{corpus_spec, load_items, parse_geometry};

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

impl TrainAeArgs {
    /// The run these flags describe.
    fn spec(&self, c: &Common) -> Result<AeRunSpec> {
        Ok(AeRunSpec {
            corpus: corpus_spec(&self.root, &self.filter)?,
            out: self.out.clone(),
            mode: RunMode::from_flags(self.resume, self.overwrite),
            steps: self.steps,
            batch: self.batch,
            crop: self.crop,
            geometry: self.geometry.as_deref().map(parse_geometry).transpose()?,
            kl_weight: self.kl_weight,
            latent_channels: self.latent_channels,
            seed: c.seed_arg,
        })
    }
}

pub fn cmd_train_ae(c: &Common, a: &TrainAeArgs) -> Result<()> {
    let spec = a.spec(c)?;
    let r = train_ae(&spec, &device(&c.device)?, &Bars::shared(c.json))?;
    emit(c.json, serde_json::to_value(&r)?, || {
        outln!(
            "step {} L1/pixel {:.4} in {:.0} s; checkpoint {}",
            r.step,
            r.l1_per_pixel,
            r.seconds,
            r.checkpoint.display()
        )
    });
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
        scale: SYSTEM_GEOMETRY.scale,
        height: h,
        width: w,
    };
    let mut filter = a.filter.clone();
    filter.split.get_or_insert_with(|| "test".into());
    let systems = load_items(&a.root, &filter, &g, &Template::default(), c.json)?;
    let (items, corpus) = (systems.items, systems.corpus);
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
