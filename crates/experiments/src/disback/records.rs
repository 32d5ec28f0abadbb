//! The records of the DisBack study: its options, each run's measured points, the
//! per-method summaries and the whole report, as serde data that the runner fills,
//! the report writer reads and `disback.json` stores.

use crate::disback::images::{ImageOptions, ImageReport};
use disback::measures::MixtureMeasures;

/// Settings of a mixture run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MixtureRun {
    /// Generator steps.
    pub steps: usize,
    /// Stage 1 DSM steps (M).
    pub record_steps: usize,
    /// Generator steps per target (K).
    pub switch_every: usize,
    /// Measure every this many generator steps.
    pub every: usize,
    /// Samples per measure (generated and fresh data).
    pub samples: usize,
    /// Batch of generator and fake updates.
    pub batch: usize,
    /// Learning rate of the generator.
    pub lr: f64,
    /// Learning rate of the fake score (and Stage 1's s′).
    pub fake_lr: f64,
    /// Use the exact score as the target (teacher A) instead of the MLP (teacher B).
    pub exact_teacher: bool,
    /// Start the generator from a fresh initialisation instead of the teacher's weights.
    pub fresh_generator: bool,
}

/// One measurement along a run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Generator steps done.
    pub step: usize,
    /// Network updates done, Stage 1 counted.
    pub updates: usize,
    /// The measures of the generator's samples.
    pub measures: MixtureMeasures,
    /// E‖s_target − s_true‖² of the next step's target on generator samples.
    pub score_mismatch: f64,
    /// Path index of the next step's target (0 = teacher).
    pub target: usize,
}

/// Settings of the study.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StudyOptions {
    /// Seeds of the main comparison (baseline vs DisBack, 2-D, both teachers).
    pub seeds: Vec<u64>,
    /// Seeds of the controls (2-D, teacher B).
    pub control_seeds: Vec<u64>,
    /// Seeds of the 16-D comparison (teacher B).
    pub seeds_16d: Vec<u64>,
    /// The 2-D runs.
    pub run: MixtureRun,
    /// The 16-D runs.
    pub run_16d: MixtureRun,
    /// DSM steps of teacher B (on 10 000 samples).
    pub teacher_steps: usize,
    /// Threshold on the cross-entropy: within this many nats of the data's entropy.
    pub ce_margin: f64,
    /// Parallel runs.
    pub jobs: usize,
    /// The image part (None: skipped).
    pub image: Option<ImageOptions>,
}

impl StudyOptions {
    /// The full study (about an hour on 2 cores).
    pub fn full() -> Self {
        let run = MixtureRun {
            steps: 800,
            record_steps: 200,
            switch_every: 10,
            every: 25,
            samples: 1000,
            batch: 128,
            lr: 1e-3,
            fake_lr: 3e-3,
            exact_teacher: false,
            fresh_generator: false,
        };
        Self {
            seeds: (0..10).collect(),
            control_seeds: (0..3).collect(),
            seeds_16d: (0..5).collect(),
            run_16d: run.clone(),
            run,
            teacher_steps: 2000,
            ce_margin: 10.0,
            jobs: 2,
            image: Some(ImageOptions {
                steps: 150,
                record_steps: 100,
                switch_every: 10,
                batch: 8,
                lr: 1e-4,
                every: 25,
                n_eval: 128,
                n_fid: 256,
            }),
        }
    }

    /// The CI-sized study: the same code on a few steps, one or two seeds.
    pub fn quick() -> Self {
        let mut o = Self::full();
        o.seeds = vec![0, 1];
        o.control_seeds = vec![0];
        o.seeds_16d = vec![0];
        for r in [&mut o.run, &mut o.run_16d] {
            r.steps = 20;
            r.record_steps = 10;
            r.switch_every = 2;
            r.every = 5;
            r.samples = 200;
            r.batch = 32;
        }
        o.teacher_steps = 100;
        o.image = Some(ImageOptions {
            steps: 2,
            record_steps: 2,
            switch_every: 1,
            batch: 2,
            lr: 1e-4,
            every: 1,
            n_eval: 16,
            n_fid: 16,
        });
        o
    }
}

/// One mixture run's record.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// ring8 or mix16.
    pub dataset: String,
    /// "A" (exact) or "B" (MLP).
    pub teacher: String,
    /// The arm.
    pub arm: String,
    /// The seed.
    pub seed: u64,
    /// The measurements.
    pub points: Vec<Point>,
    /// First generator step at which the cross-entropy reached the threshold.
    pub reached_step: Option<usize>,
    /// The network updates at that point (Stage 1 counted).
    pub reached_updates: Option<usize>,
    /// Wall time.
    pub seconds: f64,
}

/// Everything the study writes to `disback.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// The settings.
    pub options: StudyOptions,
    /// Entropy of each data set (nats) and the cross-entropy threshold.
    pub thresholds: serde_json::Value,
    /// Every mixture run.
    pub runs: Vec<RunRecord>,
    /// Summaries per (data set, teacher, arm).
    pub summary: Vec<Summary>,
    /// The image part.
    pub image: Option<ImageReport>,
    /// Wall time so far.
    pub seconds: f64,
}

/// The summary of one (data set, teacher, arm).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// ring8 or mix16.
    pub dataset: String,
    /// A or B.
    pub teacher: String,
    /// The arm.
    pub arm: String,
    /// Seeds run.
    pub seeds: usize,
    /// Seeds that reached the threshold.
    pub reached: usize,
    /// Median generator steps to the threshold (unreached runs count as the run length
    /// plus one measurement interval).
    pub median_steps: f64,
    /// Median network updates to the threshold (Stage 1 counted), same convention.
    pub median_updates: f64,
    /// Baseline median steps / this arm's, with a 95 % bootstrap interval over seeds.
    pub speedup_steps: Option<[f64; 3]>,
    /// The same in network updates.
    pub speedup_updates: Option<[f64; 3]>,
    /// Mean and standard deviation over seeds of the final cross-entropy.
    pub final_cross_entropy: [f64; 2],
    /// Mean and standard deviation of the final mode-weight error.
    pub final_mode_weight_error: [f64; 2],
    /// Mean modes covered at the end.
    pub final_modes_covered: f64,
    /// Mean and standard deviation of the final sliced W2.
    pub final_sliced_w2: [f64; 2],
}
