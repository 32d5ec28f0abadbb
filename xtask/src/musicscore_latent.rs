//! `cargo xtask train-musicscore-latent`: the shipped latent text-to-score model,
//! reproducibly: the autoencoder (`scorelab musicscore train-ae`), the latent model in
//! its space (`scorelab musicscore train --autoencoder`), both resumable, then the
//! sampling-only files in `data/checkpoints` (the model's EMA weights; the
//! autoencoder's trained weights, which the model's record names with their SHA-256).

use std::path::PathBuf;

use anyhow::Result;
use score_core::burn::tensor::Device;

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
}

/// Train what is not trained yet, then export.
pub fn run(a: TrainMusicscoreLatentArgs) -> Result<()> {
    let root = crate::cli_run::study_root(a.root)?;
    let ae = a.work.join("musicscore-ae");
    let latent = a.work.join("musicscore-latent");
    let done = |dir: &PathBuf, steps: usize| {
        score_train::checkpoint::CheckpointFile::read(&dir.join("checkpoint.safetensors"))
            .is_ok_and(|c| c.meta.step >= steps)
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    if !done(&ae, a.ae_steps) {
        crate::cli_run::scorelab(&[
            &os("musicscore"),
            &os("train-ae"),
            &os("--root"),
            root.as_os_str(),
            &os("--steps"),
            &os(&a.ae_steps.to_string()),
            &os("--out"),
            ae.as_os_str(),
            &os("--resume"),
        ])?;
    }
    if !done(&latent, a.steps) {
        let ae_ck = ae.join("checkpoint.safetensors");
        let fresh = !latent.join("checkpoint.safetensors").exists();
        let mut args = vec![
            os("musicscore"),
            os("train"),
            os("--root"),
            root.clone().into_os_string(),
            os("--steps"),
            os(&a.steps.to_string()),
            os("--out"),
            latent.clone().into_os_string(),
            os("--resume"),
        ];
        if fresh {
            args.extend([os("--autoencoder"), ae_ck.into_os_string()]);
        }
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_os_str()).collect();
        crate::cli_run::scorelab(&refs)?;
    }
    let ae_out = musicscore_gen::generator::export_latent_model(
        &latent.join("checkpoint.safetensors"),
        &a.out,
        "musicscore-ae.safetensors",
        &Device::flex(),
    )?;
    println!("wrote {} and {}", a.out.display(), ae_out.display());
    Ok(())
}
