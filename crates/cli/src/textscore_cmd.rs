//! `scorelab musicscore train | generate | evaluate`: the text-to-score model
//! (`musicscore_gen::textscore`, `musicscore_gen::generator`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use musicscore_data::prompt::Template;
use musicscore_gen::generator::{
    ENCODER, TextConfig, TextExtra, TextModel, TextRecord, checkpoint_extra, train_config,
};
use musicscore_gen::textscore::{
    Adherence, Expectation, Geometry, PromptBank, Reading, SystemItem, TextScoreData,
    unet_config_for,
};
use musicscore_gen::vocabulary::{PromptCheck, Vocabulary};
use score_nn::text::TextEncoder;
use score_train::checkpoint::CheckpointFile;
use score_train::train::{TrainOutput, train};
use serde_json::json;

use crate::common::{Common, bar_of, device, emit, fixed_on_resume, open_run};
use crate::corpus_args::{FilterArgs, RootArgs};
use crate::systems::{load_items, parse_geometry};

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

/// Refuse a geometry or batch whose training step cannot fit, before any page is read:
/// per image three times the UNet's activations (`unet_pass_bytes`) plus its
/// self-attention at an eighth of the height, whose score matrix grows with the square
/// of the pixels there (scores, softmax and their gradients, float32).
fn ensure_text_training_fits(shape: [usize; 3], batch: usize) -> Result<()> {
    let cfg = unet_config_for(shape);
    let widest = cfg.model_channels * cfg.channel_mult.iter().copied().max().unwrap_or(1);
    let linear = 3 * crate::common::unet_pass_bytes(shape, widest);
    let att_px = ((shape[1] / 8).max(1) * (shape[2] / 8).max(1)) as u128;
    let per_image = linear.saturating_add(att_px.saturating_mul(att_px).saturating_mul(12));
    score_core::limits::ensure_fits(
        "--geometry/--batch",
        (batch.max(1) as u128).saturating_mul(per_image),
        "use a smaller --geometry or --batch",
    )?;
    Ok(())
}

pub fn cmd_train(c: &Common, a: &TextTrainArgs) -> Result<()> {
    let dev = device(&c.device)?.autodiff();
    let (ck_path, resume, _lock) = open_run(&a.out, a.resume, a.overwrite)?;
    let geometry = a.geometry.as_deref().map(parse_geometry).transpose()?;
    let (g, template, dropout, batch, seed) =
        text_settings(c, a, resume.as_ref(), &ck_path, geometry)?;
    if !(0.0..=1.0).contains(&dropout) {
        bail!("--caption-dropout: {dropout} is not in [0, 1]");
    }
    // The pixel systems' step (for a latent run: the autoencoder's pass over them) must
    // fit before any page is read; the latent step is checked once its shape is known.
    ensure_text_training_fits([1, g.height, g.width], batch)?;
    let (items, bank, record, tall) = text_data(
        c,
        a,
        (&ck_path, resume.as_ref()),
        (g, geometry, template, dropout),
    )?;
    ensure_text_training_fits(record.shape(), batch)?;
    if let Some(ck) = &resume {
        check_same_data(ck, &record, &ck_path)?;
    }
    let sd = text_sigma_data(resume.as_ref(), &items)?;
    let cfg = train_config(a.steps, batch, seed, sd, dropout);
    if !c.json {
        eprintln!(
            "{} systems ({tall} too tall left out), {} distinct prompts, σ_data {sd:.4}; {}",
            items.len(),
            bank.len(),
            record.corpus
        );
    }
    dev.seed(cfg.seed);
    let out = TrainOutput {
        checkpoint: Some(ck_path.clone()),
        log: Some(a.out.join("train.jsonl")),
        progress: !c.json,
        stop_after: None,
        keep_checkpoints: a.keep_checkpoints,
    };
    let data = TextScoreData {
        items,
        bank,
        shape: record.shape(),
    };
    let t0 = Instant::now();
    let net = unet_config_for(record.shape()).init(&dev);
    let r = train(
        net,
        &data,
        &cfg,
        checkpoint_extra(&record),
        &out,
        resume.as_ref(),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    report_text_training(c, a, &ck_path, r.step, r.last_loss, secs, &record);
    Ok(())
}

/// The training systems of a run (their scaled latents for a latent run), their prompts
/// encoded, the run's record, and how many systems were too tall. `run` is the
/// checkpoint path and the checkpoint resumed; `settings` the geometry, the
/// `--geometry` given, the template and the caption dropout.
fn text_data(
    c: &Common,
    a: &TextTrainArgs,
    run: (&Path, Option<&CheckpointFile>),
    settings: (Geometry, Option<Geometry>, String, f64),
) -> Result<(Vec<SystemItem>, PromptBank, TextRecord, usize)> {
    let (ck_path, resume) = run;
    let (g, geometry, template, dropout) = settings;
    let plain = device(&c.device)?;
    let ae = crate::latent_cmd::run_autoencoder(a.autoencoder.as_deref(), resume, ck_path, &plain)?;
    let g = match &ae {
        Some(ae) => crate::latent_cmd::latent_geometry(ae, geometry, g)?,
        None => g,
    };
    let mut filter = a.filter.clone();
    filter.split.get_or_insert_with(|| "train".into());
    let tpl = Template::parse(&template)?;
    let (mut items, tall, corpus) = load_items(&a.root, &filter, &g, &tpl, c.json)?;
    let encoder = TextEncoder::load(None, &plain)?;
    let bank = PromptBank::build(&encoder, items.iter().map(|i| i.prompt.as_str()))?;
    let mut vocabulary = Vocabulary::default();
    for i in &items {
        vocabulary.add(&tpl, &i.prompt);
    }
    let latent = match &ae {
        Some(ae) => Some(crate::latent_cmd::to_latents(
            ae, &mut items, &g, ck_path, &plain,
        )?),
        None => None,
    };
    let record = TextRecord {
        geometry: g,
        template,
        encoder: ENCODER.into(),
        corpus,
        systems: items.len(),
        prompts: bank.len(),
        caption_dropout: dropout,
        latent,
        vocabulary: Some(vocabulary),
    };
    Ok((items, bank, record, tall))
}

/// σ_data of a text-to-score run: the checkpoint's on resume, else the systems' pixels'.
fn text_sigma_data(resume: Option<&CheckpointFile>, items: &[SystemItem]) -> Result<f64> {
    Ok(match resume {
        Some(ck) => ck
            .meta
            .config_as::<TextConfig>(&ck.path)?
            .train
            .precond
            .sigma_data(),
        None => score_core::precond::sigma_data_of(
            items
                .iter()
                .flat_map(|i| i.pixels.iter().map(|&v| v as f64)),
        ),
    })
}

/// What `musicscore train` did, as JSON or a line of text.
fn report_text_training(
    c: &Common,
    a: &TextTrainArgs,
    ck_path: &Path,
    step: usize,
    last_loss: f64,
    secs: f64,
    record: &TextRecord,
) {
    emit(
        c.json,
        json!({"checkpoint": ck_path, "step": step, "loss": last_loss, "seconds": secs, "record": record}),
        || {
            if last_loss.is_nan() {
                outln!(
                    "nothing to train: {} is at step {} of --steps {}",
                    ck_path.display(),
                    step,
                    a.steps
                )
            } else {
                outln!(
                    "step {} loss {:.4} in {secs:.0} s; checkpoint {}",
                    step,
                    last_loss,
                    ck_path.display()
                )
            }
        },
    );
}

/// The settings of a text-to-score run: from the flags (with their defaults) for a new
/// run, from the checkpoint on resume (a flag restated must agree).
fn text_settings(
    c: &Common,
    a: &TextTrainArgs,
    resume: Option<&CheckpointFile>,
    ck_path: &Path,
    geometry: Option<Geometry>,
) -> Result<(Geometry, String, f64, usize, u64)> {
    Ok(match resume {
        None => (
            geometry.unwrap_or_default(),
            a.template.clone().unwrap_or_else(|| "paper".into()),
            a.caption_dropout.unwrap_or(0.1),
            a.batch.unwrap_or(16),
            c.seed(),
        ),
        Some(ck) => {
            let TextConfig {
                train,
                extra: TextExtra { text: rec },
                ..
            } = ck.meta.config_as::<TextConfig>(ck_path)?;
            let batch = train.batch_size;
            (
                fixed_on_resume("--geometry", geometry, rec.geometry, ck_path)?,
                fixed_on_resume("--template", a.template.clone(), rec.template, ck_path)?,
                fixed_on_resume(
                    "--caption-dropout",
                    a.caption_dropout,
                    rec.caption_dropout,
                    ck_path,
                )?,
                fixed_on_resume("--batch", a.batch, batch, ck_path)?,
                fixed_on_resume("--seed", c.seed_arg, ck.meta.seed, ck_path)?,
            )
        }
    })
}

/// A resumed run must see the same data: as many systems and distinct prompts.
fn check_same_data(ck: &CheckpointFile, record: &TextRecord, ck_path: &Path) -> Result<()> {
    let stored = ck.meta.config_as::<TextConfig>(ck_path)?.extra.text;
    if stored.latent != record.latent {
        bail!(
            "--autoencoder: {} was trained in another latent space (or in pixels); resume with the autoencoder it records",
            ck_path.display()
        );
    }
    if stored.systems != record.systems || stored.prompts != record.prompts {
        bail!(
            "--root: {} was trained on {} systems with {} prompts, these pages give {} and {}: resume on the same data",
            ck_path.display(),
            stored.systems,
            stored.prompts,
            record.systems,
            record.prompts
        );
    }
    Ok(())
}

/// What to sample: `n` images for `prompt` (`None`: unconditional) at guidance `w`.
struct Draw<'a> {
    prompt: Option<&'a str>,
    n: usize,
    w: f64,
    steps: usize,
    seed: u64,
}

/// [`TextModel::generate`] with a progress bar (none with --json).
fn sample(
    model: &TextModel,
    encoder: Option<&TextEncoder>,
    d: &Draw,
    dev: &score_core::burn::tensor::Device,
    json: bool,
) -> Result<Vec<f32>> {
    let what = format!("w={}", d.w);
    with_bar(
        json,
        d.steps.saturating_sub(1) as u64,
        &what,
        "steps",
        |at| {
            Ok(
                model.generate(encoder, d.prompt, d.n, d.w, d.steps, d.seed, dev, |i, _| {
                    at(i)
                })?,
            )
        },
    )
}

/// Run `f` with a progress bar of `len` `unit`s (none with --json); `f` reports its
/// position through the callback it is given.
fn with_bar<T>(
    json: bool,
    len: u64,
    what: &str,
    unit: &str,
    f: impl FnOnce(&dyn Fn(usize)) -> Result<T>,
) -> Result<T> {
    let pb = (!json).then(|| bar_of(len, what, unit));
    let out = f(&|i| {
        if let Some(b) = &pb {
            b.set_position(i as u64);
        }
    });
    if let Some(b) = pb {
        b.finish_and_clear();
    }
    out
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
    if a.n == 0 || a.steps < 2 {
        bail!("--n must be positive and --steps at least 2");
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
    let px = sample(&model, encoder.as_ref(), &draw, &dev, c.json)?;
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

/// Whether `prompt` holds only values the model was trained on (true when the
/// checkpoint records no vocabulary).
fn seen(rec: &TextRecord, tpl: &Template, prompt: &str) -> bool {
    rec.vocabulary
        .as_ref()
        .is_none_or(|v| v.check(tpl, prompt) == PromptCheck::Known)
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

/// The most frequent held-out prompt of each study instrumentation (1, 2, 4 staves).
fn eval_prompts(items: &[SystemItem]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for want in [2usize, 1, 4] {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for i in items.iter().filter(|i| i.expected == Some(want)) {
            *counts.entry(i.prompt.as_str()).or_default() += 1;
        }
        if let Some((p, _)) = counts
            .iter()
            .max_by_key(|(p, c)| (**c, std::cmp::Reverse(**p)))
        {
            out.push((p.to_string(), want));
        }
    }
    out
}

/// Which count of an [`Adherence`] a table shows.
#[derive(Clone, Copy)]
enum Count {
    Readable,
    Staves,
    Key,
}

fn frac(a: &Adherence, which: Count) -> String {
    let k = match which {
        Count::Readable => a.readable,
        Count::Staves => a.agree,
        Count::Key => a.key_agree,
    };
    let n = a.n;
    let p = k as f64 / n.max(1) as f64;
    // Wilson 95 % interval.
    let z = 1.96f64;
    let nn = n.max(1) as f64;
    let c = (p + z * z / (2.0 * nn)) / (1.0 + z * z / nn);
    let h = z * (p * (1.0 - p) / nn + z * z / (4.0 * nn * nn)).sqrt() / (1.0 + z * z / nn);
    format!(
        "{k}/{n} = {p:.2} [{:.2}, {:.2}]",
        (c - h).max(0.0),
        (c + h).min(1.0)
    )
}

pub fn cmd_evaluate(c: &Common, a: &EvaluateArgs) -> Result<()> {
    let dev = device(&c.device)?;
    let t0 = Instant::now();
    let path = a.checkpoint.clone().unwrap_or_else(shipped);
    let model = TextModel::load(&path, &dev)?;
    let g = model.record.geometry;
    let tpl = Template::parse(&model.record.template)?;
    let mut filter = a.filter.clone();
    filter.split.get_or_insert_with(|| "test".into());
    let (real, _, corpus) = load_items(&a.root, &filter, &g, &tpl, c.json)?;
    let prompts = eval_prompts(&real);
    if prompts.is_empty() {
        bail!("{corpus}: no held-out pages of piano, violin or string quartet");
    }
    let encoder = TextEncoder::load(None, &dev)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let per = g.width * g.height;
    let run = |prompt: Option<&str>, w: f64, seed: u64| -> Result<Vec<f32>> {
        let draw = Draw {
            prompt,
            n: a.n,
            w,
            steps: a.steps,
            seed,
        };
        sample(&model, Some(&encoder), &draw, &dev, c.json)
    };
    let split = |px: &[f32]| px.chunks(per).map(<[f32]>::to_vec).collect::<Vec<_>>();
    let uncond = split(&run(None, 1.0, c.seed())?);
    write_grid(&a.out.join("unconditional.png"), &uncond, g)?;
    let mut rows = Vec::new();
    let mut fid_images: Vec<Vec<f32>> = Vec::new();
    for (k, (prompt, want)) in prompts.iter().enumerate() {
        let fifths = Expectation::of_prompt(&tpl, prompt).fifths;
        let of_want: Vec<&SystemItem> = real.iter().filter(|i| i.expected == Some(*want)).collect();
        let reals: Vec<Vec<f32>> = of_want.iter().map(|i| i.pixels.clone()).collect();
        // The real systems against their own pages' prompts: the detectors' ceiling.
        let real_want: Vec<Expectation> = of_want
            .iter()
            .map(|i| Expectation::of_prompt(&tpl, &i.prompt))
            .collect();
        write_grid(&a.out.join(format!("staves{want}_real.png")), &reals, g)?;
        let mut guided = Vec::new();
        for &w in &a.guidance {
            let imgs = split(&run(Some(prompt), w, c.seed() + 1 + k as u64)?);
            write_grid(&a.out.join(format!("staves{want}_w{w}.png")), &imgs, g)?;
            let m = Adherence::measure(&imgs, g.width, g.height, Some(*want), fifths);
            if w == a.fid_guidance {
                fid_images.push(imgs.concat());
            }
            guided.push(json!({"guidance": w, "measure": m}));
        }
        rows.push(json!({
            "prompt": prompt, "expected_staves": want, "expected_fifths": fifths,
            "seen_in_training": seen(&model.record, &tpl, prompt),
            "real": Adherence::measure_each(&reals, g.width, g.height, &real_want),
            "unconditional": Adherence::measure(&uncond, g.width, g.height, Some(*want), fifths),
            "guided": guided,
        }));
    }
    let noise_floor = noise_floor(c.seed(), a.n.max(64), g, &dev)?;
    let fid = (!a.no_fid)
        .then(|| fid_k(&fid_images, &real, &prompts, &a.fid_k, g, &dev, c.json))
        .transpose()?;
    let report = json!({
        "checkpoint": path, "step": model.meta.step, "record": model.record, "held_out": corpus,
        "n": a.n, "steps": a.steps, "seed": c.seed(), "fid_guidance": a.fid_guidance,
        "rows": rows, "fid_k": fid, "noise_readability": noise_floor,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    write_evaluation(c, a, report)
}

/// evaluate.json and evaluate.md in --out, and the table (or the JSON) on stdout.
fn write_evaluation(c: &Common, a: &EvaluateArgs, report: serde_json::Value) -> Result<()> {
    score_core::fs::write_atomic(
        &a.out.join("evaluate.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let md = evaluate_markdown(&report, &a.guidance)?;
    score_core::fs::write_atomic(&a.out.join("evaluate.md"), md.as_bytes())?;
    emit(c.json, report, || outln!("{md}"));
    Ok(())
}

/// The first 8 images of `imgs` (each `g.height × g.width`) as a grid: one row, or two
/// columns for whole systems (wider than twice their height).
fn write_grid(path: &Path, imgs: &[Vec<f32>], g: Geometry) -> Result<()> {
    let shown = imgs.len().min(8);
    let px: Vec<f32> = imgs.iter().take(8).flatten().copied().collect();
    let cols = if g.width > 2 * g.height { 2 } else { 8 };
    Ok(score_io::image::write_image_grid(
        path,
        &px,
        [shown, 1, g.height, g.width],
        cols,
    )?)
}

/// The staff detector's false-positive floor: `n` images of pure N(0, 1) noise,
/// clamped like a sample.
fn noise_floor(seed: u64, n: usize, g: Geometry, dev: &burn::tensor::Device) -> Result<Adherence> {
    let per = g.width * g.height;
    let mut rng = score_core::tensor::stream_rng(seed, 0x4e4f_4953, 0);
    let noise: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            let t = score_core::tensor::randn([per], &mut rng, dev);
            score_core::tensor::to_vec_f32(t)
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(Adherence::measure(&noise, g.width, g.height, None, None))
}

/// FID-k: the first k generated images (taken round-robin over the prompts) against
/// every held-out system image of the three instrumentations, with the FID
/// Inception-v3.
fn fid_k(
    generated: &[Vec<f32>],
    real: &[SystemItem],
    prompts: &[(String, usize)],
    ks: &[usize],
    g: Geometry,
    dev: &score_core::burn::tensor::Device,
    json: bool,
) -> Result<Vec<serde_json::Value>> {
    let per = g.width * g.height;
    let net = score_eval::fid::FidInception::load_default(dev)?;
    let feats = |images: &[f32]| -> Result<Vec<f32>> {
        let n = images.len() / per;
        let u8s = score_eval::fid::quantize_signed(images)?;
        with_bar(json, n as u64, "inception", "images", |at| {
            Ok(net.features(&u8s, [n, 1, g.height, g.width], 16, at)?)
        })
    };
    let wanted: Vec<usize> = prompts.iter().map(|p| p.1).collect();
    let reals: Vec<f32> = real
        .iter()
        .filter(|i| i.expected.is_some_and(|e| wanted.contains(&e)))
        .flat_map(|i| i.pixels.iter().copied())
        .collect();
    let real_stats = score_eval::fid::stats::FeatureStats::from_features(&feats(&reals)?, 2048)?;
    let m = generated.iter().map(|v| v.len() / per).min().unwrap_or(0);
    let mut order = Vec::new();
    for i in 0..m {
        for v in generated {
            order.extend_from_slice(&v[i * per..(i + 1) * per]);
        }
    }
    let fake = feats(&order)?;
    let mut out = Vec::new();
    for &k in ks {
        if k < 2 || k * 2048 > fake.len() {
            continue;
        }
        let s = score_eval::fid::stats::FeatureStats::from_features(&fake[..k * 2048], 2048)?;
        let fid = score_eval::fid::stats::fid_from_stats(&s, &real_stats)?;
        out.push(json!({"k": k, "fid": fid, "real_images": reals.len() / per}));
    }
    Ok(out)
}

fn evaluate_markdown(r: &serde_json::Value, guidance: &[f64]) -> Result<String> {
    let ad =
        |v: &serde_json::Value| -> Result<Adherence> { Ok(serde_json::from_value(v.clone())?) };
    let mut s = String::new();
    s.push_str("| prompt | staves | real held-out | unconditional |");
    for w in guidance {
        s.push_str(&format!(" w = {w} |"));
    }
    s.push_str("\n|---|---|---|---|");
    s.push_str(&"---|".repeat(guidance.len()));
    s.push('\n');
    for (title, agree) in [
        ("Readability (a staff system detected)", Count::Readable),
        (
            "Prompt adherence (detected staves = implied)",
            Count::Staves,
        ),
        (
            "Key adherence (key signature read = the key's; real: each page's own key)",
            Count::Key,
        ),
    ] {
        s.push_str(&format!(
            "| **{title}** | | | |{}\n",
            " |".repeat(guidance.len())
        ));
        for row in r["rows"].as_array().context("rows")? {
            s.push_str(&format!(
                "| {} | {} | {} | {} |",
                row["prompt"].as_str().unwrap_or(""),
                row["expected_staves"],
                frac(&ad(&row["real"])?, agree),
                frac(&ad(&row["unconditional"])?, agree)
            ));
            for gd in row["guided"].as_array().context("guided")? {
                s.push_str(&format!(" {} |", frac(&ad(&gd["measure"])?, agree)));
            }
            s.push('\n');
        }
    }
    s.push_str(&format!(
        "\nThe detector on pure N(0, 1) noise images (its false-positive floor): readable {}.\n",
        frac(&ad(&r["noise_readability"])?, Count::Readable)
    ));
    if let Some(f) = r["fid_k"].as_array() {
        s.push_str("\n| k | FID-k |\n|---|---|\n");
        for x in f {
            s.push_str(&format!(
                "| {} | {:.1} |\n",
                x["k"],
                x["fid"].as_f64().unwrap_or(f64::NAN)
            ));
        }
    }
    Ok(s)
}
