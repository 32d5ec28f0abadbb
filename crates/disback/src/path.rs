//! Stage 1, degradation recording: a copy s′ of the teacher trained by denoising score
//! matching on samples of the frozen initial generator G⁰, with checkpoints
//! s′₀ = teacher, s′₁, …, s′_N on [`DistillConfig::path_steps`]. The path is one
//! safetensors file: s′_k under `path.k.` and an index (the steps) in its metadata;
//! s′₀ is the teacher and is not stored again.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use score_core::tensor::{randn, stream_rng};
use score_nn::precond::ScoreNetwork;
use score_train::checkpoint::{CheckpointFile, CheckpointMeta, collect_params};
use score_train::train::{Denoising, Learner, objective_gradients_with};

use crate::config::DistillConfig;
use crate::error::{DisbackError, Result};
use crate::run::{RunOutput, batch_shape};
use crate::teacher::{Teacher, generate};
use score_train::fit::{Clock, Observer, ProgressBar, Schedule, TrainStep, fit};

/// Random stream of Stage 1's steps.
const STREAM_RECORD: u64 = 0xd15b_0001;

/// The recorded path: s′₁ … s′_N (plain networks) and the DSM step of each.
pub struct DegradationPath<N> {
    /// The step after which s′_k was saved, k = 1…N.
    pub steps: Vec<usize>,
    /// s′_1 … s′_N.
    pub nets: Vec<N>,
}

impl<N: Module> DegradationPath<N> {
    /// Entries including s′₀ = the teacher: N + 1.
    pub fn len(&self) -> usize {
        self.nets.len() + 1
    }

    /// Whether only the teacher is on the path.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The path file's bytes with `config` in its metadata.
    pub fn to_bytes(&self, config: &serde_json::Value, step: usize, seed: u64) -> Result<Vec<u8>> {
        let parts = self
            .nets
            .iter()
            .enumerate()
            .map(|(k, n)| (format!("path.{}.", k + 1), collect_params(n)))
            .collect();
        let meta = CheckpointMeta::new(
            step,
            seed,
            serde_json::json!({
                "path": { "steps": self.steps, "entries": self.len(), "entry_0": "the teacher" },
                "run": config,
            }),
        );
        Ok(score_train::checkpoint::parts_bytes(parts, None, &meta)?)
    }

    /// Read a path file, each entry into a copy of `template`'s structure.
    pub fn load(file: &Path, template: &N) -> Result<Self> {
        let ck = CheckpointFile::read(file)?;
        Self::from_checkpoint(&ck, template)
    }

    fn from_checkpoint(ck: &CheckpointFile, template: &N) -> Result<Self> {
        let steps = ck.meta.config_as::<PathConfig>(&ck.path)?.path.steps;
        let nets = (1..=steps.len())
            .map(|k| ck.load_into(template.clone(), &format!("path.{k}."), false))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self { steps, nets })
    }
}

/// The configuration of `path.safetensors`: the path index.
#[derive(serde::Deserialize)]
struct PathConfig {
    path: PathIndex,
}

/// The generator steps at which s′₁…s′_N were saved.
#[derive(serde::Deserialize)]
struct PathIndex {
    steps: Vec<usize>,
}

/// The configuration of `recording.safetensors`: the run's settings.
#[derive(serde::Deserialize)]
struct RecordingConfig {
    run: DistillConfig,
}

/// Record the degradation path of `teacher` toward the frozen generator `g0` (a plain
/// network): Stage 1 of DisBack. With `out.dir`, the path so far and s′'s optimiser
/// state are written together (`path.safetensors`, `recording.safetensors`) at every
/// path checkpoint, and a run interrupted there resumes exactly.
pub fn record_path<const D: usize, N: ScoreNetwork<D>>(
    teacher: &Teacher<'_, D, N>,
    g0: &N,
    sample_shape: &[usize],
    cfg: &DistillConfig,
    out: &RunOutput,
) -> Result<DegradationPath<N>> {
    let schedule = cfg.path_steps();
    let files = out
        .dir
        .as_ref()
        .map(|d| (d.join("path.safetensors"), d.join("recording.safetensors")));
    let (learner, path, start) = match &files {
        Some((p, r)) if p.exists() && r.exists() => {
            resume_recording(teacher, cfg, &schedule, p, r)?
        }
        _ => (
            Learner::new(teacher.net.clone(), &cfg.fake),
            DegradationPath {
                steps: Vec::new(),
                nets: Vec::new(),
            },
            0,
        ),
    };
    let plain = teacher
        .eval
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex);
    let mut run = RecordRun {
        teacher,
        g0,
        sample_shape,
        cfg,
        files,
        schedule,
        grid: cfg.sigma_grid.allowed()?,
        plain,
        learner,
        path,
        loss: f64::NAN,
    };
    let steps = Schedule {
        start,
        end: cfg.path.steps.max(start),
        total: cfg.path.steps,
        // No log of its own; the path is saved where it gains a checkpoint.
        log_every: usize::MAX,
        checkpoint_every: 1,
        saved: None,
    };
    let mut bar = out.progress.then(|| ProgressBar::new("record"));
    let mut observers: Vec<&mut dyn Observer> = Vec::new();
    observers.extend(bar.as_mut().map(|o| o as &mut dyn Observer));
    fit(&mut run, &steps, &mut observers)?;
    Ok(run.path)
}

/// The recording so far (s′'s learner, the path, the step) from `path_file` and
/// `rec_file`, refused when it was made with other settings or on another schedule.
fn resume_recording<const D: usize, N: ScoreNetwork<D>>(
    teacher: &Teacher<'_, D, N>,
    cfg: &DistillConfig,
    schedule: &[usize],
    path_file: &Path,
    rec_file: &Path,
) -> Result<(Learner<N>, DegradationPath<N>, usize)> {
    let path = DegradationPath::load(path_file, &teacher.eval)?;
    let rec = CheckpointFile::read(rec_file)?;
    let saved = rec.meta.config_as::<RecordingConfig>(rec_file)?.run;
    if !crate::config::same_run(&saved, cfg) {
        return Err(DisbackError::invalid(
            "resume",
            format!(
                "{} holds a recording with other settings; use a new --out or the same settings",
                rec_file.display()
            ),
        ));
    }
    if path.steps.as_slice() != &schedule[..path.steps.len()] {
        return Err(DisbackError::invalid(
            "path",
            format!("{} was recorded on another schedule", path_file.display()),
        ));
    }
    let start = rec.meta.step;
    Ok((
        Learner::restore(teacher.net.clone(), &cfg.fake, &rec)?,
        path,
        start,
    ))
}

/// Stage 1 as score-train's [`TrainStep`]: one DSM step of s′ on the frozen
/// generator's samples per step; at the steps of the recording schedule the path gains
/// s′ and, with an output folder, the path and s′'s state are written together.
struct RecordRun<'a, 't, const D: usize, N: ScoreNetwork<D>> {
    teacher: &'a Teacher<'t, D, N>,
    g0: &'a N,
    sample_shape: &'a [usize],
    cfg: &'a DistillConfig,
    files: Option<(PathBuf, PathBuf)>,
    schedule: Vec<usize>,
    grid: Vec<f64>,
    plain: Device,
    learner: Learner<N>,
    path: DegradationPath<N>,
    loss: f64,
}

impl<const D: usize, N: ScoreNetwork<D>> TrainStep for RecordRun<'_, '_, D, N> {
    fn step(&mut self, t: usize) -> score_core::Result<()> {
        let cfg = self.cfg;
        let mut rng = stream_rng(cfg.fake.seed, STREAM_RECORD, t as u64);
        let z = randn(
            batch_shape::<D>(cfg.fake.batch_size, self.sample_shape)?,
            &mut rng,
            &self.plain,
        );
        let x0 = generate(self.g0, &self.teacher.precond, cfg.sigma_gen, z).autodiff();
        let grid = &self.grid;
        let (loss, grads) = objective_gradients_with(
            &self.learner.net,
            &cfg.fake,
            &Denoising,
            x0,
            None,
            &mut rng,
            &|r| cfg.fake_sigma.draw(grid, &cfg.fake.precond, r),
        )?;
        if !loss.is_finite() {
            return Err(DisbackError::invalid(
                "stage 1",
                format!("non-finite DSM loss {loss} at step {t}"),
            )
            .into());
        }
        self.learner.step(&cfg.fake, t, grads)?;
        self.loss = loss;
        if self.schedule.contains(&(t + 1)) {
            self.path.steps.push(t + 1);
            self.path.nets.push(self.learner.net.valid());
        }
        Ok(())
    }

    fn log_record(&mut self, done: usize, _clock: &Clock) -> score_core::Result<serde_json::Value> {
        Ok(serde_json::json!({ "step": done, "loss": self.loss }))
    }

    fn status(&self) -> String {
        format!("DSM loss {:.4}", self.loss)
    }

    fn save(&mut self, done: usize) -> score_core::Result<bool> {
        match &self.files {
            Some((p, r)) if self.schedule.contains(&done) => {
                save_recording(&self.path, &self.learner, self.cfg, done, p, r)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

fn save_recording<N: Module>(
    path: &DegradationPath<N>,
    learner: &Learner<N>,
    cfg: &DistillConfig,
    step: usize,
    path_file: &Path,
    rec_file: &Path,
) -> Result<()> {
    let config =
        serde_json::to_value(cfg).map_err(|e| DisbackError::invalid("config", e.to_string()))?;
    let p = path.to_bytes(&config, step, cfg.fake.seed)?;
    let meta = CheckpointMeta::new(
        step,
        cfg.fake.seed,
        serde_json::json!({ "stage": "degradation-recording", "run": config }),
    );
    let r = learner.checkpoint_bytes(&meta)?;
    Ok(score_core::fs::write_atomic_all(&[
        (path_file, &p),
        (rec_file, &r),
    ])?)
}
