//! The distillation run: Stage 2 of DisBack and, with an empty path, plain score
//! distillation. Per generator step: one generator update with the pseudo-gradient of
//! [`crate::gradient`] against the current target, then `fake_updates` DSM updates of
//! the fake score s_φ on fresh generator samples (so that at step 0 of the baseline,
//! s_φ = teacher and the generator gradient is exactly zero). Both updates use
//! score-core's [`Learner`] step (clipping, schedule, AdamW, EMA) and the fake score's
//! loss is score-core's DSM objective: there is no second optimiser loop.
//!
//! Every draw of generator step s comes from generators seeded by (seed, s), so a run
//! resumed from its checkpoint continues exactly (tested).

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use rand::RngExt;
use score_core::Denoiser;
use score_core::fs::write_atomic_all;
use score_core::tensor::{per_sample, randn, stream_rng, tensor1};
use score_nn::Preconditioned;
use score_nn::precond::ScoreNetwork;
use score_train::checkpoint::{CheckpointFile, CheckpointMeta};
use score_train::fit::{Clock, JsonLinesLog, Observer, ProgressBar, Schedule, TrainStep, fit};
use score_train::train::{Denoising, Learner, ema_update, objective_gradients_with};

use crate::config::{DistillConfig, Method, Order, same_run};
use crate::error::{DisbackError, Result};
use crate::gradient::{pseudo_gradient, surrogate_loss};
use crate::path::{DegradationPath, record_path};
pub use crate::run::RunOutput;
use crate::run::batch_shape;
use crate::teacher::{ONE_STEP_NAME, Teacher, generate};

const STREAM_GEN: u64 = 0xd15b_0002;
const STREAM_FAKE: u64 = 0xd15b_0003;
const STREAM_ORDER: u64 = 0xd15b_0004;

/// One generator step's numbers.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StepStats {
    /// Generator steps done.
    pub step: usize,
    /// Network updates done in all (Stage 1 counted).
    pub updates: usize,
    /// Global norm of the generator's gradient before clipping.
    pub generator_grad_norm: f64,
    /// Mean DSM loss of this step's fake-score updates.
    pub fake_loss: f64,
    /// The target's index on the path (0 = teacher).
    pub target: usize,
}

/// A distillation in progress (Stage 2; Stage 1 runs in [`Distiller::new`]).
pub struct Distiller<'a, const D: usize, N> {
    cfg: DistillConfig,
    teacher: &'a Teacher<'a, D, N>,
    /// Intermediate targets in the order they are used, with their path index.
    targets: Vec<(usize, N)>,
    generator: Learner<N>,
    fake: Learner<N>,
    step: usize,
    sample_shape: Vec<usize>,
    sigmas: Vec<f64>,
    spec: serde_json::Value,
}

impl<'a, const D: usize, N: ScoreNetwork<D>> Distiller<'a, D, N> {
    /// Set up a run from the initial generator `g0` (a copy of the teacher's network,
    /// DMD2's convention, or a fresh one; on the autodiff device) for samples of shape
    /// `sample_shape`: Stage 1 for DisBack, s_φ, the targets. With `out.dir` holding a
    /// checkpoint of the same run, it resumes from there. `spec` describes the network
    /// (score-core's `ModelSpec`) so that the generator checkpoint loads back.
    pub fn new(
        teacher: &'a Teacher<'a, D, N>,
        g0: N,
        sample_shape: &[usize],
        cfg: &DistillConfig,
        spec: serde_json::Value,
        out: &RunOutput,
    ) -> Result<Self> {
        cfg.validate()?;
        batch_shape::<D>(1, sample_shape)?;
        if let Some(dir) = &out.dir {
            std::fs::create_dir_all(dir).map_err(|e| score_core::ScoreError::io(dir, e))?;
            score_core::fs::clean_stale_temporaries(dir)?;
        }
        let path = match cfg.method {
            Method::Baseline => None,
            Method::Disback => Some(record_path(teacher, &g0.valid(), sample_shape, cfg, out)?),
        };
        let (fake_init, targets) = match &path {
            None => (teacher.net.clone(), Vec::new()),
            Some(p) => targets_of(p, teacher, cfg)?,
        };
        let mut d = Self {
            cfg: cfg.clone(),
            teacher,
            targets,
            generator: Learner::new(g0, &cfg.generator),
            fake: Learner::new(fake_init, &cfg.fake),
            step: 0,
            sample_shape: sample_shape.to_vec(),
            sigmas: cfg.sigma_grid.allowed()?,
            spec,
        };
        if let Some(dir) = &out.dir {
            d.resume_from(dir)?;
        }
        Ok(d)
    }

    fn resume_from(&mut self, dir: &Path) -> Result<()> {
        let (g, f) = (
            dir.join("generator.safetensors"),
            dir.join("fake.safetensors"),
        );
        if !g.exists() {
            return Ok(());
        }
        let (gc, fc) = (CheckpointFile::read(&g)?, CheckpointFile::read(&f)?);
        let saved = gc.meta.config_as::<DistillCheckpoint>(&g)?.distill;
        if !same_run(&saved, &self.cfg) {
            return Err(DisbackError::invalid(
                "resume",
                format!(
                    "{} holds a run with other settings; use a new --out or the same settings",
                    dir.display()
                ),
            ));
        }
        if gc.meta.step != fc.meta.step {
            return Err(DisbackError::invalid(
                "resume",
                format!(
                    "{} is at step {}, {} at {}",
                    g.display(),
                    gc.meta.step,
                    f.display(),
                    fc.meta.step
                ),
            ));
        }
        self.generator = Learner::restore(self.generator.net.clone(), &self.cfg.generator, &gc)?;
        self.fake = Learner::restore(self.fake.net.clone(), &self.cfg.fake, &fc)?;
        self.step = gc.meta.step;
        Ok(())
    }

    /// Generator steps done.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Network updates done in all, Stage 1 counted: M + steps·(1 + K).
    pub fn updates(&self) -> usize {
        self.cfg.stage1_updates() + self.step * (1 + self.cfg.fake_updates)
    }

    /// The generator's current network (plain copy).
    pub fn generator(&self) -> N {
        self.generator.net.valid()
    }

    /// The generator's EMA.
    pub fn generator_ema(&self) -> &N {
        &self.generator.ema
    }

    /// The fake score's current network (plain copy).
    pub fn fake(&self) -> N {
        self.fake.net.valid()
    }

    /// The settings.
    pub fn config(&self) -> &DistillConfig {
        &self.cfg
    }

    /// The index on the path of the target at generator step `step` (0 = teacher)
    /// and its network (None: the teacher's denoiser).
    fn target_at(&self, step: usize) -> (usize, Option<&N>) {
        match self.targets.get(step / self.cfg.switch_every) {
            Some((k, n)) => (*k, Some(n)),
            None => (0, None),
        }
    }

    /// The path index (0 = teacher) of the next generator step's target.
    pub fn target_index(&self) -> usize {
        self.target_at(self.step).0
    }

    /// The target denoiser of the next generator step.
    pub fn target(&self) -> Box<dyn Denoiser<D> + '_> {
        match self.target_at(self.step).1 {
            Some(n) => Box::new(Preconditioned::new(n, self.teacher.precond)),
            None => self.teacher.denoiser(),
        }
    }

    /// Generate `z.dims()[0]` samples with the current generator.
    pub fn sample(&self, z: Tensor<D>) -> Tensor<D> {
        generate(
            &self.generator(),
            &self.teacher.precond,
            self.cfg.sigma_gen,
            z,
        )
    }

    /// One generator step: the generator update, then K fake-score updates.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let s = self.step;
        let (target_index, grads) = self.generator_gradients(s)?;
        let norm = self.generator.step(&self.cfg.generator, s, grads)?;
        let fake_loss = self.fake_updates(s)?;
        if !(norm.is_finite() && fake_loss.is_finite()) {
            return Err(DisbackError::invalid(
                "distillation",
                format!(
                    "non-finite values at generator step {s}: gradient norm {norm}, fake loss {fake_loss}"
                ),
            ));
        }
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            updates: self.updates(),
            generator_grad_norm: norm,
            fake_loss,
            target: target_index,
        })
    }

    /// The generator's gradients at step `s` and the target's path index.
    pub fn generator_gradients(&self, s: usize) -> Result<(usize, GradientsParams)> {
        let cfg = &self.cfg;
        let device = self
            .generator
            .net
            .devices()
            .into_iter()
            .next()
            .unwrap_or_else(Device::flex);
        let plain = device.clone().without_autodiff();
        let mut rng = stream_rng(cfg.generator.seed, STREAM_GEN, s as u64);
        let shape = batch_shape::<D>(cfg.generator.batch_size, &self.sample_shape)?;
        let z = randn(shape, &mut rng, &device);
        let x0 = generate(&self.generator.net, &self.teacher.precond, cfg.sigma_gen, z);
        let sig: Vec<f64> = (0..shape[0])
            .map(|_| self.sigmas[rng.random_range(0..self.sigmas.len())])
            .collect();
        let noise = randn(shape, &mut rng, &plain);
        let sigma = tensor1(&sig, &plain);
        let x0p = x0.clone().without_autodiff();
        let xs = x0p.clone() + noise * per_sample::<D>(sigma.clone());
        let (index, net) = self.target_at(s);
        let d_target = match net {
            Some(n) => Preconditioned::new(n, self.teacher.precond).denoise(
                xs.clone(),
                sigma.clone(),
                None,
            ),
            None => self
                .teacher
                .denoiser()
                .denoise(xs.clone(), sigma.clone(), None),
        };
        let fake = self.fake.net.valid();
        let d_fake = Preconditioned::new(&fake, self.teacher.precond).denoise(xs, sigma, None);
        let g = pseudo_gradient(cfg.gradient, x0p, d_target, d_fake);
        let loss = surrogate_loss(x0, g);
        Ok((
            index,
            GradientsParams::from_grads(loss.backward(), &self.generator.net),
        ))
    }

    fn fake_updates(&mut self, s: usize) -> Result<f64> {
        let cfg = &self.cfg;
        let current = self.generator.net.valid();
        let plain = current
            .devices()
            .into_iter()
            .next()
            .unwrap_or_else(Device::flex);
        let mut total = 0.0;
        for k in 0..cfg.fake_updates {
            let u = s * cfg.fake_updates + k;
            let mut rng = stream_rng(cfg.fake.seed, STREAM_FAKE, u as u64);
            let z = randn(
                batch_shape::<D>(cfg.fake.batch_size, &self.sample_shape)?,
                &mut rng,
                &plain,
            );
            let x0 = generate(&current, &self.teacher.precond, cfg.sigma_gen, z).autodiff();
            let (loss, grads) = objective_gradients_with(
                &self.fake.net,
                &cfg.fake,
                &Denoising,
                x0,
                None,
                &mut rng,
                &|r| cfg.fake_sigma.draw(&self.sigmas, &cfg.fake.precond, r),
            )?;
            self.fake.step(&cfg.fake, u, grads)?;
            total += loss;
        }
        Ok(total / cfg.fake_updates as f64)
    }

    /// Run to `cfg.steps` generator steps (or `out.stop_after` more), checkpointing every
    /// `generator.checkpoint_every` steps and at the end, logging every
    /// `generator.log_every` steps, and calling `observe` before the first step and after
    /// every step.
    pub fn run(
        &mut self,
        out: &RunOutput,
        observe: &mut dyn FnMut(&Self, Option<&StepStats>) -> Result<()>,
    ) -> Result<()> {
        let schedule = Schedule {
            start: self.step,
            end: out
                .stop_after
                .map_or(self.cfg.steps, |k| (self.step + k).min(self.cfg.steps)),
            total: self.cfg.steps,
            log_every: self.cfg.generator.log_every,
            checkpoint_every: self.cfg.generator.checkpoint_every,
            saved: None,
        };
        observe(self, None)?;
        let mut log = out
            .dir
            .as_ref()
            .map(|d| JsonLinesLog::new(&d.join("distill.jsonl")));
        let mut bar = out.progress.then(|| ProgressBar::new("distill"));
        let mut observers: Vec<&mut dyn Observer> = Vec::new();
        observers.extend(log.as_mut().map(|o| o as &mut dyn Observer));
        observers.extend(bar.as_mut().map(|o| o as &mut dyn Observer));
        let mut run = DistillRun {
            dist: self,
            out,
            observe,
            last: None,
        };
        fit(&mut run, &schedule, &mut observers)?;
        Ok(())
    }

    /// Write `generator.safetensors` and `fake.safetensors` together.
    pub fn save(&self, out: &RunOutput) -> Result<()> {
        let Some(dir) = &out.dir else { return Ok(()) };
        let distill = serde_json::to_value(&self.cfg)
            .map_err(|e| DisbackError::invalid("config", e.to_string()))?;
        let meta = |train: &score_train::train::TrainConfig, objective: serde_json::Value| {
            CheckpointMeta::new(
                self.step,
                train.seed,
                serde_json::json!({
                    "train": train, "extra": self.spec, "objective": objective,
                    "distill": distill, "teacher": self.teacher.describe(),
                }),
            )
        };
        let g = self.generator.checkpoint_bytes(&meta(
            &self.cfg.generator,
            serde_json::json!({ "name": ONE_STEP_NAME, "sigma_gen": self.cfg.sigma_gen }),
        ))?;
        let f = self.fake.checkpoint_bytes(&meta(
            &self.cfg.fake,
            serde_json::json!({ "name": "fake-score" }),
        ))?;
        let (gp, fp) = (
            dir.join("generator.safetensors"),
            dir.join("fake.safetensors"),
        );
        Ok(write_atomic_all(&[(&gp, &g), (&fp, &f)])?)
    }
}

/// s_φ's start (s′_N, on the training device) and the intermediate targets of `order`.
fn targets_of<const D: usize, N: ScoreNetwork<D>>(
    path: &DegradationPath<N>,
    teacher: &Teacher<'_, D, N>,
    cfg: &DistillConfig,
) -> Result<(N, Vec<(usize, N)>)> {
    let n = path.nets.len();
    let end = path
        .nets
        .last()
        .ok_or_else(|| DisbackError::invalid("path", "no checkpoint after the teacher"))?;
    let fake = score_train::checkpoint::copy_weights(end, teacher.net.clone())?;
    let inner: Vec<usize> = (1..n).collect();
    let pick = |ks: Vec<usize>| {
        ks.into_iter()
            .map(|k| (k, path.nets[k - 1].clone()))
            .collect()
    };
    let targets = match cfg.order {
        Order::Backward => pick(inner.into_iter().rev().collect()),
        Order::Forward => pick(inner),
        Order::Shuffled => {
            let mut ks = inner;
            rand::seq::SliceRandom::shuffle(
                &mut ks[..],
                &mut stream_rng(cfg.generator.seed, STREAM_ORDER, 0),
            );
            pick(ks)
        }
        Order::WarmStartOnly => Vec::new(),
        // θ_N + (k/N)(θ_teacher − θ_N) = EMA step of θ_N toward the teacher with β = 1 − k/N.
        Order::Interpolate => (1..n)
            .map(|k| {
                (
                    n - k,
                    ema_update(end.clone(), &teacher.eval, 1.0 - k as f64 / n as f64),
                )
            })
            .collect(),
    };
    Ok((fake, targets))
}

/// The part of a generator checkpoint's configuration that resume compares.
#[derive(serde::Deserialize)]
struct DistillCheckpoint {
    distill: DistillConfig,
}

/// What [`Distiller::run`] calls before the first step and after every step.
pub type StepObserver<'o, 't, const D: usize, N> =
    dyn FnMut(&Distiller<'t, D, N>, Option<&StepStats>) -> Result<()> + 'o;

/// A distillation run as score-train's [`TrainStep`]: one generator step (and its fake
/// score updates) per step, the caller's `observe` after each, both networks saved
/// together.
struct DistillRun<'r, 't, const D: usize, N: ScoreNetwork<D>> {
    dist: &'r mut Distiller<'t, D, N>,
    out: &'r RunOutput,
    observe: &'r mut StepObserver<'r, 't, D, N>,
    last: Option<StepStats>,
}

impl<const D: usize, N: ScoreNetwork<D>> TrainStep for DistillRun<'_, '_, D, N> {
    fn step(&mut self, _step: usize) -> score_core::Result<()> {
        let st = self.dist.train_step()?;
        (self.observe)(self.dist, Some(&st))?;
        self.last = Some(st);
        Ok(())
    }

    fn log_record(&mut self, _done: usize, clock: &Clock) -> score_core::Result<serde_json::Value> {
        let mut line = serde_json::to_value(self.last)
            .map_err(|e| DisbackError::invalid("log", e.to_string()))?;
        line["elapsed_s"] = clock.elapsed_s().into();
        Ok(line)
    }

    fn status(&self) -> String {
        self.last.map_or_else(String::new, |st| {
            format!(
                "|g| {:.3}  fake {:.4}  target s'{}",
                st.generator_grad_norm, st.fake_loss, st.target
            )
        })
    }

    fn save(&mut self, _done: usize) -> score_core::Result<bool> {
        self.dist.save(self.out)?;
        Ok(self.out.dir.is_some())
    }
}
