//! The CPU-scale overfitting study (`cargo xtask experiment scoreaug`): arms × seeds ×
//! training-set sizes, each trained by score-core's one loop with its objective, the
//! train and held-out loss recorded over training, and the [`scoreaug::measures`] of the
//! final EMA model. Writes `scoreaug.json`, `scoreaug.md`, `heldout_loss_<n>.svg` and a
//! sample grid per arm.

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;
use score_eval::plot::{Plot, Series};
use score_io::images::ImageDataset;
use score_nn::unet::UNetConfig;
use score_train::pipeline;
use score_train::train::{ImageData, Objective, TrainOutput, train_with};

use scoreaug::error::Result;
use scoreaug::measures::{self, MeasureOptions, Model, Report};
use scoreaug::objective::{Augment, Mode};
use scoreaug::transforms::Kind;

/// One arm of the study.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Arm {
    /// Its name in tables and plots.
    pub name: String,
    /// The objective (`None`: plain denoising).
    pub augment: Option<Augment>,
}

/// The five arms of the spec: none, NLA, ScoreAug, ScoreAug rot90 without ω (the
/// leakage control), NLA + ScoreAug.
pub fn arms() -> Result<Vec<Arm>> {
    let all = Kind::ALL.to_vec();
    Ok(vec![
        Arm {
            name: "none".into(),
            augment: None,
        },
        Arm {
            name: "nla".into(),
            augment: Some(Augment::new(Mode::Nla, 0.5, all.clone(), true)?),
        },
        Arm {
            name: "scoreaug".into(),
            augment: Some(Augment::new(Mode::ScoreAug, 0.5, all.clone(), true)?),
        },
        Arm {
            name: "scoreaug-rot90-no-omega".into(),
            augment: Some(Augment::new(Mode::ScoreAug, 0.5, vec![Kind::Rot90], false)?),
        },
        Arm {
            name: "nla+scoreaug".into(),
            augment: Some(Augment::new(Mode::NlaScoreAug, 0.5, all, true)?),
        },
    ])
}

/// Settings of the study.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StudyOptions {
    /// Training-set sizes (class-balanced subsets of the demo's 9 000 training images).
    pub sizes: Vec<usize>,
    /// Seeds per arm.
    pub seeds: Vec<u64>,
    /// Optimisation steps per run.
    pub steps: usize,
    /// Steps between two loss evaluations.
    pub eval_every: usize,
    /// UNet base width.
    pub channels: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// σ levels of the loss recorded during training.
    pub curve_sigmas: Vec<f64>,
    /// Images per set in that loss.
    pub curve_images: usize,
    /// Final measures.
    pub measure: MeasureOptions,
    /// Run only the arms with these names (all when `None`).
    pub arms: Option<Vec<String>>,
}

impl StudyOptions {
    /// The full study's settings.
    pub fn full() -> Self {
        Self {
            sizes: vec![64, 256],
            seeds: vec![0, 1, 2],
            steps: 1200,
            eval_every: 100,
            channels: 8,
            batch_size: 32,
            curve_sigmas: vec![0.1, 0.3, 1.0, 3.0],
            curve_images: 64,
            measure: MeasureOptions {
                n_eval: 64,
                n_samples: 64,
                ..MeasureOptions::default()
            },
            arms: None,
        }
    }

    /// CI's: one seed, one size, a few steps, small measures.
    pub fn quick() -> Self {
        Self {
            sizes: vec![32],
            seeds: vec![0],
            steps: 6,
            eval_every: 3,
            curve_images: 8,
            measure: MeasureOptions {
                n_eval: 8,
                n_samples: 4,
                steps: 4,
                equivariance_sigmas: vec![0.5],
                loss_sigmas: vec![0.5],
                seed: 0,
            },
            ..Self::full()
        }
    }
}

/// One finished run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Run {
    /// Arm name.
    pub arm: String,
    /// Training images.
    pub size: usize,
    /// Seed.
    pub seed: u64,
    /// (step, mean train loss, mean held-out loss) over training.
    pub curve: Vec<(usize, f64, f64)>,
    /// The final measures.
    pub report: Report,
    /// Wall time of the run.
    pub seconds: f64,
}

fn mean_loss(m: &Model, x: &ImageDataset, o: &StudyOptions, device: &Device) -> Result<f64> {
    let den = score_nn::Preconditioned::new(m.net, m.precond);
    let n = o.curve_images.min(x.num_images());
    let [c, h, w] = x.image_shape;
    let curve = measures::loss_curve(
        &den,
        &m.precond,
        &x.pixels[..n * c * h * w],
        [n, c, h, w],
        &o.curve_sigmas,
        7,
        device,
    )?;
    Ok(curve.iter().sum::<f64>() / curve.len() as f64)
}

/// Train one arm on one subset with one seed, evaluating as it goes.
fn run_one(
    arm: &Arm,
    train: &ImageDataset,
    held: &ImageDataset,
    seed: u64,
    o: &StudyOptions,
    work: &Path,
    fid: Option<measures::FidSetup>,
) -> Result<(Run, Vec<f32>)> {
    let t0 = Instant::now();
    let dev = Device::flex().autodiff();
    dev.seed(seed);
    let (cfg, unet) = arm_config(arm, train, o, seed);
    let objective: &dyn Objective<4> = match &arm.augment {
        Some(a) => a,
        None => &score_train::train::Denoising,
    };
    let ck = work.join(format!(
        "{}-{}-{}.safetensors",
        arm.name,
        train.num_images(),
        seed
    ));
    let _ = std::fs::remove_file(&ck);
    let extra = arm_extra(arm, train, o, &unet);
    let data = ImageData {
        images: train.clone(),
        use_labels: false,
    };
    let mut curve = Vec::new();
    let mut net = unet.init(&dev);
    let inf = Device::flex();
    let mut step = 0;
    while step < o.steps {
        let out = TrainOutput {
            keep_checkpoints: false,
            checkpoint: Some(ck.clone()),
            log: None,
            progress: false,
            stop_after: Some(o.eval_every),
            replicas: Vec::new(),
        };
        let resume = (step > 0)
            .then(|| score_train::checkpoint::CheckpointFile::read(&ck))
            .transpose()?;
        let r = train_with(
            net,
            &data,
            &cfg,
            objective,
            extra.clone(),
            &out,
            resume.as_ref(),
        )?;
        step = r.step;
        net = r.net;
        let ema = burn::module::Module::valid(&r.ema);
        let m = Model {
            net: &ema,
            precond: cfg.precond,
            kinds: vec![],
            omega: scoreaug::objective::OmegaLayout::of(None),
        };
        curve.push((
            step,
            mean_loss(&m, train, o, &inf)?,
            mean_loss(&m, held, o, &inf)?,
        ));
    }
    let (report, grid) = measure_arm(arm, train, held, seed, o, &ck, &unet, cfg.precond, fid)?;
    let run = Run {
        arm: arm.name.clone(),
        size: train.num_images(),
        seed,
        curve,
        report,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((run, grid))
}

/// The training settings and the UNet of `arm` on `train`.
fn arm_config(
    arm: &Arm,
    train: &ImageDataset,
    o: &StudyOptions,
    seed: u64,
) -> (score_train::TrainConfig, UNetConfig) {
    let mut cfg = pipeline::demo_train_config(o.steps, seed);
    cfg.batch_size = o.batch_size;
    cfg.checkpoint_every = o.eval_every;
    cfg.precond = score_core::Precond::edm(score_core::precond::sigma_data_of(
        &mut train.pixels.iter().map(|&v| v as f64),
    ));
    let mut unet: UNetConfig = pipeline::demo_unet_config().with_model_channels(o.channels);
    if let Some(aug) = &arm.augment {
        unet.augment_dim = aug.augment_dim();
    }
    (cfg, unet)
}

/// What `scorelab train` records in a checkpoint, so that `scorelab sample` and
/// `scorelab scoreaug measure` read a study checkpoint like any other (the
/// class-balanced subset of the first 9 000 test images equals that of all 10 000 for
/// these sizes).
fn arm_extra(
    arm: &Arm,
    train: &ImageDataset,
    o: &StudyOptions,
    unet: &UNetConfig,
) -> serde_json::Value {
    let mut extra =
        pipeline::ModelSpec::unet(unet, train.image_shape, "fashion-mnist-test").to_json();
    extra["cli"] = serde_json::json!({
        "data": "fashion-mnist-test", "subset": train.num_images(), "channels": o.channels,
        "cond": "none", "augment": arm.augment,
    });
    extra
}

/// The measures of the EMA weights in `ck` (the equivariance over the arm's transforms,
/// or all of them for the plain arm), and a grid of samples.
#[allow(clippy::too_many_arguments)]
fn measure_arm(
    arm: &Arm,
    train: &ImageDataset,
    held: &ImageDataset,
    seed: u64,
    o: &StudyOptions,
    ck: &Path,
    unet: &UNetConfig,
    precond: score_core::Precond,
    fid: Option<measures::FidSetup>,
) -> Result<(Report, Vec<f32>)> {
    let inf = Device::flex();
    let ck_file = score_train::checkpoint::CheckpointFile::read(ck)?;
    let ema = ck_file.load_into(unet.init(&inf), "ema.", true)?;
    let kinds = arm
        .augment
        .as_ref()
        .map_or(Kind::ALL.to_vec(), |a| a.scoreaug.kinds.clone());
    let m = Model {
        net: &ema,
        precond,
        kinds,
        omega: scoreaug::objective::OmegaLayout::of(arm.augment.as_ref()),
    };
    let mut mo = o.measure.clone();
    mo.seed = seed;
    let report = measures::measure(&m, train, held, &mo, fid, &inf)?;
    let [c, h, w] = train.image_shape;
    let grid = measures::samples(
        &m,
        [c, h, w],
        16.min(mo.n_samples.max(1)),
        mo.steps,
        seed,
        &inf,
    )?;
    Ok((report, grid))
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        f64::NAN
    };
    (m, sd)
}

fn table(runs: &[Run], arms: &[Arm], sizes: &[usize]) -> String {
    let mut md = String::from(
        "| n | arm | seeds | final train loss | final held-out loss | gap (held − train)/train | memorisation | leakage (real: test's own rate) | equivariance err. σ=0.5 | FID (n samples) |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for &n in sizes {
        for a in arms {
            let rs: Vec<&Run> = runs
                .iter()
                .filter(|r| r.arm == a.name && r.size == n)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let f = |g: &dyn Fn(&Run) -> f64| {
                let (m, s) = mean_sd(&rs.iter().map(|r| g(r)).collect::<Vec<_>>());
                format!("{m:.4} ± {s:.4}")
            };
            let last = |r: &Run, k: usize| {
                r.curve
                    .last()
                    .map_or(f64::NAN, |c| if k == 0 { c.1 } else { c.2 })
            };
            let eq = |r: &Run| {
                let v: Vec<f64> = r
                    .report
                    .equivariance
                    .iter()
                    .filter(|e| e.sigma == 0.5)
                    .map(|e| e.error)
                    .collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            };
            let fid = if rs.iter().all(|r| r.report.fid.is_some()) {
                let (m, s) = mean_sd(
                    &rs.iter()
                        .map(|r| r.report.fid.map_or(f64::NAN, |f| f.fid))
                        .collect::<Vec<_>>(),
                );
                format!("{m:.1} ± {s:.1} ({})", rs[0].report.n_samples)
            } else {
                "–".into()
            };
            md += &format!(
                "| {n} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {fid} |\n",
                a.name,
                rs.len(),
                f(&|r| last(r, 0)),
                f(&|r| last(r, 1)),
                f(&|r| r.report.relative_gap),
                f(&|r| r.report.memorization_rate),
                f(&|r| r.report.leakage_rate),
                f(&|r| r.report.leakage_real),
                f(&eq),
            );
        }
    }
    md
}

/// The equivariance error at σ = 0.5 per transform (mean ± sd over seeds): a model can
/// be equivariant to the invertible transforms it was conditioned on (flip, rot90,
/// brightness), not to translation or cutout, which lose pixels.
fn equivariance_table(runs: &[Run], arms: &[Arm], sizes: &[usize]) -> String {
    let kinds = Kind::ALL;
    let name = |k: Kind| {
        serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
    };
    let head: Vec<String> = kinds.iter().map(|&k| name(k).unwrap_or_default()).collect();
    let mut md = format!(
        "Equivariance error at σ = 0.5 per transform:\n\n| n | arm | {} |\n|---|---|{}\n",
        head.join(" | "),
        "---|".repeat(kinds.len())
    );
    for &n in sizes {
        for a in arms {
            let rs: Vec<&Run> = runs
                .iter()
                .filter(|r| r.arm == a.name && r.size == n)
                .collect();
            let cells: Vec<String> = kinds
                .iter()
                .map(|&k| {
                    let v: Vec<f64> = rs
                        .iter()
                        .flat_map(|r| r.report.equivariance.iter())
                        .filter(|e| e.sigma == 0.5 && e.kind == k)
                        .map(|e| e.error)
                        .collect();
                    match v.is_empty() {
                        true => "–".into(),
                        false => {
                            let (m, s) = mean_sd(&v);
                            format!("{m:.4} ± {s:.4}")
                        }
                    }
                })
                .collect();
            if !rs.is_empty() {
                md += &format!("| {n} | {} | {} |\n", a.name, cells.join(" | "));
            }
        }
    }
    md
}

fn plot(runs: &[Run], arms: &[Arm], n: usize) -> Plot {
    let series = arms
        .iter()
        .filter_map(|a| {
            let rs: Vec<&Run> = runs
                .iter()
                .filter(|r| r.arm == a.name && r.size == n)
                .collect();
            let first = rs.first()?;
            let points = (0..first.curve.len())
                .map(|i| {
                    let v: Vec<f64> = rs.iter().map(|r| r.curve[i].2).collect();
                    (first.curve[i].0 as f64, mean_sd(&v).0)
                })
                .collect();
            Some(Series {
                label: a.name.clone(),
                points,
                markers_only: false,
            })
        })
        .collect();
    Plot {
        title: format!(
            "held-out denoising loss during training, {n} training images (mean over seeds)"
        ),
        x_label: "step".into(),
        y_label: "mean weighted loss over σ ∈ {0.1, 0.3, 1, 3}".into(),
        log_x: false,
        log_y: false,
        series,
        y_range: None,
    }
}

/// Run the study and write its report to `out`; `progress` hears about each run.
pub fn run_study(
    o: &StudyOptions,
    out: &Path,
    fid: Option<measures::FidSetup>,
    mut progress: impl FnMut(&Run),
) -> Result<Vec<Run>> {
    std::fs::create_dir_all(out).map_err(|e| score_core::ScoreError::io(out, e))?;
    let work = out.join("work");
    std::fs::create_dir_all(&work).map_err(|e| score_core::ScoreError::io(&work, e))?;
    let (all_train, held) = pipeline::demo_split()?;
    let mut arms = arms()?;
    if let Some(keep) = &o.arms {
        if let Some(bad) = keep.iter().find(|k| !arms.iter().any(|a| &a.name == *k)) {
            return Err(scoreaug::AugError::invalid(
                "arms",
                format!("unknown arm '{bad}'"),
            ));
        }
        arms.retain(|a| keep.contains(&a.name));
    }
    let t0 = Instant::now();
    let mut runs = Vec::new();
    for &n in &o.sizes {
        let train = all_train.balanced_subset(n);
        for a in &arms {
            let mut grid = Vec::new();
            for &seed in &o.seeds {
                let (run, g) = run_one(a, &train, &held, seed, o, &work, fid)?;
                progress(&run);
                if grid.is_empty() {
                    grid = g;
                }
                runs.push(run);
                // Written after every run, so that an interrupted study keeps its runs.
                write_report(o, &arms, &runs, t0.elapsed().as_secs_f64(), out)?;
            }
            let [c, h, w] = train.image_shape;
            let k = grid.len() / (c * h * w);
            score_io::image::write_image_grid(
                &out.join(format!("grid_{}_{n}.png", a.name)),
                &grid,
                [k, c, h, w],
                8,
            )?;
        }
        plot(&runs, &arms, n).save(&out.join(format!("heldout_loss_{n}.svg")))?;
    }
    write_report(o, &arms, &runs, t0.elapsed().as_secs_f64(), out)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(runs)
}

fn write_report(o: &StudyOptions, arms: &[Arm], runs: &[Run], secs: f64, out: &Path) -> Result<()> {
    let json = serde_json::json!({ "options": o, "arms": arms, "runs": runs, "seconds": secs });
    score_core::fs::write_atomic(
        &out.join("scoreaug.json"),
        serde_json::to_string_pretty(&json)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let md = format!(
        "{}\n{}\nMean ± standard deviation over seeds {:?}; {} steps, batch {}, UNet width {}; wall time {:.0} s.\n",
        table(runs, arms, &o.sizes),
        equivariance_table(runs, arms, &o.sizes),
        o.seeds,
        o.steps,
        o.batch_size,
        o.channels,
        secs
    );
    score_core::fs::write_atomic(&out.join("scoreaug.md"), md.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_study_runs_every_arm_and_writes_its_report() {
        let dir = tempfile::tempdir().unwrap();
        let runs = run_study(&StudyOptions::quick(), dir.path(), None, |_| {}).unwrap();
        assert_eq!(runs.len(), 5);
        assert!(runs.iter().all(|r| r.curve.len() == 2 && r.curve[1].0 == 6));
        for f in [
            "scoreaug.json",
            "scoreaug.md",
            "heldout_loss_32.svg",
            "grid_none_32.png",
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        let md = std::fs::read_to_string(dir.path().join("scoreaug.md")).unwrap();
        assert!(md.contains("scoreaug-rot90-no-omega"));
    }
}
