//! `scorelab musicscore train | generate | evaluate`: the text-to-score model
//! (`musicscore_gen::textscore`, `musicscore_gen::generator`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use musicscore_data::prompt::Template;
use musicscore_gen::evaluate::{Draw, EvaluateSpec, evaluate, sample};
use musicscore_gen::generator::{TextModel, TextRecord};
use musicscore_gen::run::{TextRunSpec, train_text};
use musicscore_gen::textscore::{Adherence, Expectation, Geometry, Reading};
use score_nn::text::TextEncoder;
use score_train::run::RunMode;
use serde_json::json;

use crate::common::{Common, device, emit};
use crate::corpus_args::{FilterArgs, RootArgs};
use crate::feedback::Bars;
use crate::systems::{corpus_spec, parse_geometry};

/// The checkpoint `generate` and `evaluate` use when none is given: the one shipped in
/// `data/checkpoints`.
pub fn shipped() -> PathBuf {
    score_io::images::shipped_data_dir().join("checkpoints/musicscore-text.safetensors")
}

#[derive(Args)]
pub struct TextTrainArgs {
    #[command(flatten)]
    root: RootArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Output folder (checkpoint.safetensors, train.jsonl).
    #[arg(long, default_value = "out/musicscore-gen")]
    out: PathBuf,
    /// Total optimisation steps (on --resume, a larger number continues the run).
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Minibatch size [default: 16; fixed by the checkpoint on --resume].
    #[arg(long)]
    batch: Option<usize>,
    /// Caption dropout probability [default: 0.1; fixed on --resume].
    #[arg(long)]
    caption_dropout: Option<f64>,
    /// Prompt template or preset (paper, of, full) [default: paper; fixed on --resume].
    #[arg(long)]
    template: Option<String>,
    /// Image geometry W×H@scale [default: 32x128@0.5; fixed on --resume].
    #[arg(long)]
    geometry: Option<String>,
    /// Continue the run in --out.
    #[arg(long)]
    resume: bool,
    /// Replace a run in --out.
    #[arg(long)]
    overwrite: bool,
    /// Keep every checkpoint written (checkpoint.stepN.safetensors).
    #[arg(long)]
    keep_checkpoints: bool,
    /// Train a latent model in the space of this autoencoder (a checkpoint of
    /// `musicscore train-ae`; its geometry is the model's). It is copied beside the
    /// checkpoint as autoencoder.safetensors [fixed on --resume].
    #[arg(long)]
    autoencoder: Option<PathBuf>,
    /// Weight the squared error of each image's leading eighth of columns (clefs and
    /// key signature) this much in the training loss [default: 1, EDM's loss; fixed on
    /// --resume].
    #[arg(long)]
    signature_weight: Option<f64>,
    /// Give this prompt field (e.g. key) to the network also as a one-hot class label
    /// over its training values, beside the text [default: none; fixed on --resume].
    #[arg(long)]
    label_field: Option<String>,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// A checkpoint of `scorelab musicscore train` [default: the shipped one].
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The prompt; without it, unconditional samples.
    #[arg(long)]
    prompt: Option<String>,
    /// Classifier-free guidance scale (1 = none).
    #[arg(long, default_value_t = 4.0)]
    guidance: f64,
    /// Images.
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// Heun σ levels.
    #[arg(long, default_value_t = 18)]
    steps: usize,
    /// Output folder (samples.png, samples.json).
    #[arg(long, default_value = "out/musicscore-generate")]
    out: PathBuf,
    /// Generate even when the prompt names an instrumentation or key the model was
    /// not trained on (a warning instead of a refusal).
    #[arg(long)]
    allow_unseen: bool,
    /// Also write page-<k>.png: the images stacked in pages of this many systems, one
    /// above the other (each system sampled on its own: no coherence across systems).
    #[arg(long)]
    page: Option<usize>,
}

impl TextTrainArgs {
    /// The run these flags describe.
    fn spec(&self, c: &Common) -> Result<TextRunSpec> {
        Ok(TextRunSpec {
            corpus: corpus_spec(&self.root, &self.filter)?,
            out: self.out.clone(),
            mode: RunMode::from_flags(self.resume, self.overwrite),
            steps: self.steps,
            batch: self.batch,
            caption_dropout: self.caption_dropout,
            template: self.template.clone(),
            geometry: self.geometry.as_deref().map(parse_geometry).transpose()?,
            seed: c.seed_arg,
            keep_checkpoints: self.keep_checkpoints,
            autoencoder: self.autoencoder.clone(),
            signature_weight: self.signature_weight,
            label_field: self.label_field.clone(),
        })
    }
}

pub fn cmd_train(c: &Common, a: &TextTrainArgs) -> Result<()> {
    let spec = a.spec(c)?;
    let r = train_text(&spec, &device(&c.device)?, &Bars::shared(c.json))?;
    emit(c.json, serde_json::to_value(&r)?, || {
        if r.loss.is_nan() {
            outln!(
                "nothing to train: {} is at step {} of --steps {}",
                r.checkpoint.display(),
                r.step,
                a.steps
            )
        } else {
            outln!(
                "step {} loss {:.4} in {:.0} s; checkpoint {}",
                r.step,
                r.loss,
                r.seconds,
                r.checkpoint.display()
            )
        }
    });
    Ok(())
}

/// The model of `generate` (checked: the file exists, --n and --steps, the prompt
/// against its vocabulary), its template, and the vocabulary warning.
fn generation_model(
    c: &Common,
    a: &GenerateArgs,
    dev: &score_core::burn::tensor::Device,
) -> Result<(PathBuf, TextModel, Template, Option<String>)> {
    let path = a.checkpoint.clone().unwrap_or_else(shipped);
    if !path.exists() {
        bail!(
            "{}: no such checkpoint (the shipped one is data/checkpoints/musicscore-text.safetensors; `cargo xtask train-musicscore-checkpoint` rebuilds it)",
            path.display()
        );
    }
    if a.n == 0 {
        bail!("--n: must be at least 1");
    }
    if a.steps < 2 {
        bail!("--steps: need at least 2 noise levels, got {}", a.steps);
    }
    let model = TextModel::load(&path, dev)?;
    let tpl = Template::parse(&model.record.template)?;
    let unseen = match &a.prompt {
        Some(p) => check_vocabulary(&model.record, &tpl, p, a.allow_unseen)?,
        None => None,
    };
    if let Some(m) = &unseen
        && !c.json
    {
        eprintln!("warning: {m}");
    }
    // All --n images are sampled as one batch; guidance doubles the passes.
    crate::common::ensure_passes_fit(
        &score_train::pipeline::LoadedModel::Unet(
            score_nn::network::ImageNet::Scorelab(model.net.clone()),
            model.record.shape(),
        ),
        (a.n as u128).saturating_mul(2),
        "--n",
        "use a smaller --n",
    )?;
    Ok((path, model, tpl, unseen))
}

/// With `--page k`, page-<i>.png in `out`: the images `px` stacked `k` to a page
/// (the last page holds the rest). Returns the files written.
fn write_pages(out: &Path, px: &[f32], k: Option<usize>, g: &Geometry) -> Result<Vec<PathBuf>> {
    let Some(k) = k else {
        return Ok(Vec::new());
    };
    if k == 0 {
        bail!("--page: at least one system per page, got 0");
    }
    let per = g.height * g.width;
    px.chunks(k * per)
        .enumerate()
        .map(|(i, chunk)| {
            let path = out.join(format!("page-{i}.png"));
            let n = chunk.len() / per;
            score_io::image::write_image_grid(&path, chunk, [n, 1, g.height, g.width], 1)?;
            Ok(path)
        })
        .collect()
}

pub fn cmd_generate(c: &Common, a: &GenerateArgs) -> Result<()> {
    let dev = device(&c.device)?;
    let (path, model, tpl, unseen) = generation_model(c, a, &dev)?;
    let g = model.record.geometry;
    let encoder = match &a.prompt {
        Some(_) => Some(TextEncoder::load(None, &dev)?),
        None => None,
    };
    let draw = Draw {
        prompt: a.prompt.as_deref(),
        n: a.n,
        w: a.guidance,
        steps: a.steps,
        seed: c.seed(),
    };
    let px = sample(&model, encoder.as_ref(), &draw, &dev, &Bars::shared(c.json))?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let png = a.out.join("samples.png");
    // Whole systems (wider than twice their height) two to a row.
    let cols = if g.width > 2 * g.height {
        a.n.min(2)
    } else {
        a.n.min(8)
    };
    score_io::image::write_image_grid(&png, &px, [a.n, 1, g.height, g.width], cols)?;
    let per = g.height * g.width;
    let pages = write_pages(&a.out, &px, a.page, &g)?;
    let images: Vec<Vec<f32>> = px.chunks(per).map(<[f32]>::to_vec).collect();
    let read: Vec<Reading> = images
        .iter()
        .map(|p| Reading::of(p, g.width, g.height))
        .collect();
    let (staves, keys): (Vec<_>, Vec<_>) = read.iter().map(|r| (r.staves, r.fifths)).unzip();
    let want = a
        .prompt
        .as_deref()
        .map(|p| Expectation::of_prompt(&tpl, p))
        .unwrap_or_default();
    let expected = want.staves;
    let m = Adherence::of_readings(&read, &vec![want; read.len()]);
    let report = json!({
        "checkpoint": path, "step": model.meta.step, "prompt": a.prompt, "guidance": a.guidance,
        "n": a.n, "steps": a.steps, "seed": c.seed(), "png": png,
        "detected_staves": staves, "expected_staves": expected,
        "key_signatures": keys, "expected_fifths": want.fifths,
        "readability": m.readability(), "agreement": expected.map(|_| m.agreement()),
        "key_agreement": want.fifths.map(|_| m.key_agreement()), "prompt_warning": unseen,
        "pages": pages,
    });
    score_core::fs::write_atomic(
        &a.out.join("samples.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    emit(c.json, report, || {
        outln!(
            "{} images → {}; staff systems found in {}/{}{}",
            a.n,
            png.display(),
            m.readable,
            m.n,
            expected
                .map(|e| format!(", {} with the {e} staves the prompt implies", m.agree))
                .unwrap_or_default()
        )
    });
    Ok(())
}

/// The vocabulary check of `--prompt`: `None` when the model knows every value, the
/// warning when `allow` (or when the checkpoint records no vocabulary), else the
/// refusal naming the unseen values.
fn check_vocabulary(
    rec: &TextRecord,
    tpl: &Template,
    prompt: &str,
    allow: bool,
) -> Result<Option<String>> {
    let Some(v) = &rec.vocabulary else {
        return Ok(Some(
            "this checkpoint records no training vocabulary (it predates the record), so the prompt's instrumentation and key cannot be checked".into(),
        ));
    };
    let check = v.check(tpl, prompt);
    match check.message(&rec.template) {
        None => Ok(None),
        Some(m) if allow => Ok(Some(m)),
        Some(m) => bail!(
            "--prompt: {m}. The model would draw something it was trained on instead; pass --allow-unseen to generate anyway"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_instrumentation_maps_to_staves() {
        let tpl = Template::default();
        let e = |p: &str| Expectation::of_prompt(&tpl, p);
        assert_eq!(
            e("a music score, instrumentation is violin, key is A major"),
            Expectation {
                staves: Some(1),
                fifths: Some(3)
            }
        );
        assert_eq!(
            e("a music score, instrumentation is 2 violins, viola, cello").staves,
            Some(4)
        );
        assert_eq!(e("a music score of piano"), Expectation::default());
        assert!(parse_geometry("64x128@0.5").is_ok());
        assert!(parse_geometry("64x128@1.5").is_err());
        assert!(parse_geometry("64").is_err());
    }
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// A checkpoint of `scorelab musicscore train` [default: the shipped one].
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Held-out pages (real baseline, prompts, FID reference).
    #[command(flatten)]
    root: RootArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Images per prompt and guidance scale.
    #[arg(long, default_value_t = 24)]
    n: usize,
    /// Guidance scales.
    #[arg(long, default_value = "1,2,4,8", value_delimiter = ',')]
    guidance: Vec<f64>,
    /// FID-k sizes (generated images, over the three prompts, at --fid-guidance).
    #[arg(long, default_value = "8,16,32,64", value_delimiter = ',')]
    fid_k: Vec<usize>,
    /// The guidance scale whose images FID-k uses.
    #[arg(long, default_value_t = 4.0)]
    fid_guidance: f64,
    /// Skip FID-k (it needs `cargo xtask fid-setup`).
    #[arg(long)]
    no_fid: bool,
    /// Heun σ levels.
    #[arg(long, default_value_t = 18)]
    steps: usize,
    /// Output folder (evaluate.json, evaluate.md, grids).
    #[arg(long, default_value = "out/musicscore-evaluate")]
    out: PathBuf,
}

pub fn cmd_evaluate(c: &Common, a: &EvaluateArgs) -> Result<()> {
    let spec = EvaluateSpec {
        checkpoint: a.checkpoint.clone().unwrap_or_else(shipped),
        corpus: corpus_spec(&a.root, &a.filter)?,
        n: a.n,
        guidance: a.guidance.clone(),
        fid_k: if a.no_fid {
            Vec::new()
        } else {
            a.fid_k.clone()
        },
        fid_guidance: a.fid_guidance,
        steps: a.steps,
        out: a.out.clone(),
        seed: c.seed(),
    };
    let (report, md) = evaluate(&spec, &device(&c.device)?, &Bars::shared(c.json))?;
    emit(c.json, report, || outln!("{md}"));
    Ok(())
}
