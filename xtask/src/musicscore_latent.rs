//! `cargo xtask train-musicscore-latent`: the shipped latent text-to-score model,
//! reproducibly: the autoencoder (`musicscore_gen::run::train_ae`, as `scorelab
//! musicscore train-ae`), the latent model in its space (`train_text` with an
//! autoencoder, as `scorelab musicscore train --autoencoder`), both resumable, then the
//! sampling-only files in `data/checkpoints` (the model's EMA weights; the
//! autoencoder's trained weights, which the model's record names with their SHA-256).

use std::path::PathBuf;

use anyhow::Result;
use musicscore_gen::run::{AeRunSpec, TextRunSpec, train_ae, train_text};
use musicscore_gen::systems::CorpusSpec;
use score_core::burn::tensor::Device;
use score_train::run::RunMode;

/// The flags of `cargo xtask train-musicscore-latent`.
#[derive(clap::Args)]
pub struct TrainMusicscoreLatentArgs {
    /// Autoencoder steps (batch 8, 128-px windows of 416×128 systems).
    #[arg(long, default_value_t = 1200)]
    ae_steps: usize,
    /// Latent model steps (batch 16).
    #[arg(long, default_value_t = 2500)]
    steps: usize,
    /// Working folder: musicscore-ae/ and musicscore-latent/ (full checkpoints, logs).
    #[arg(long, default_value = "out")]
    work: PathBuf,
    /// The training corpus [default: the study corpus of `cargo xtask fixture
    /// musicscore --study`].
    #[arg(long)]
    root: Option<PathBuf>,
    /// Where the sampling-only model goes (the autoencoder beside it, as
    /// musicscore-ae.safetensors).
    #[arg(long, default_value = "data/checkpoints/musicscore-latent.safetensors")]
    out: PathBuf,
    /// Weight of the latent model's squared error in the leading eighth of the columns
    /// (clefs and key signature) [default: 1, EDM's loss; the shipped model's].
    #[arg(long)]
    signature_weight: Option<f64>,
    /// A prompt field (e.g. key) given to the latent model also as a one-hot class
    /// label [default: none, the text alone; the shipped model's].
    #[arg(long)]
    label_field: Option<String>,
}

/// Train what is not trained yet, then export.
pub fn run(a: TrainMusicscoreLatentArgs) -> Result<()> {
    let root = crate::study::study_root(a.root)?;
    let ae = a.work.join("musicscore-ae");
    let latent = a.work.join("musicscore-latent");
    let done = |dir: &PathBuf, steps: usize| {
        score_train::checkpoint::CheckpointFile::read(&dir.join("checkpoint.safetensors"))
            .is_ok_and(|c| c.meta.step >= steps)
    };
    let (dev, fb) = (Device::flex(), crate::study::printed());
    if !done(&ae, a.ae_steps) {
        let mut spec = AeRunSpec::new(CorpusSpec::new(&root), &ae, a.ae_steps);
        spec.mode = RunMode::Resume;
        let r = train_ae(&spec, &dev, &fb)?;
        println!(
            "autoencoder: step {} L1/pixel {:.4}",
            r.step, r.l1_per_pixel
        );
    }
    if !done(&latent, a.steps) {
        let mut spec = TextRunSpec::new(CorpusSpec::new(&root), &latent, a.steps);
        spec.mode = RunMode::Resume;
        spec.signature_weight = a.signature_weight;
        spec.label_field = a.label_field.clone();
        if !latent.join("checkpoint.safetensors").exists() {
            spec.autoencoder = Some(ae.join("checkpoint.safetensors"));
        }
        let r = train_text(&spec, &dev, &fb)?;
        println!("latent model: step {} loss {:.4}", r.step, r.loss);
    }
    let ae_out = musicscore_gen::generator::export_latent_model(
        &latent.join("checkpoint.safetensors"),
        &a.out,
        "musicscore-ae.safetensors",
        &dev,
    )?;
    println!("wrote {} and {}", a.out.display(), ae_out.display());
    Ok(())
}
