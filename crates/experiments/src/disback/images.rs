//! The study's image part: the shipped Fashion-MNIST UNet distilled into a one-step
//! generator by the baseline and by DisBack, the generator's samples compared with the
//! teacher's 18-step Heun samples (Fréchet distance on 32 PCA components of the pixels,
//! the basis fitted on the 1 000 held-out images) against wall-clock time, and the
//! final FID (real Inception) when the FID network is set up.

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;
use score_core::metrics::{frechet_distance, pca_basis, pca_project};
use score_core::tensor::{randn, stream_rng, to_vec_f32};
use score_eval::fid::{FidEstimate, FidInception, FidReference, quantize_signed};
use score_nn::unet::UNet;
use score_train::pipeline;

use disback::config::{DistillConfig, Method};
use disback::distill::{Distiller, RunOutput};
use disback::error::Result;
use disback::teacher::Teacher;

/// Settings of the image part: distil the shipped Fashion-MNIST UNet.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImageOptions {
    /// Generator steps per method.
    pub steps: usize,
    /// Stage 1 DSM steps.
    pub record_steps: usize,
    /// Generator steps per target.
    pub switch_every: usize,
    /// Batch of every update.
    pub batch: usize,
    /// Learning rate (generator and fake score).
    pub lr: f64,
    /// Measure every this many generator steps.
    pub every: usize,
    /// Images per measure (one-step samples and the teacher's Heun samples).
    pub n_eval: usize,
    /// One-step samples for the final FID (when the FID network is set up).
    pub n_fid: usize,
}

/// One measurement of an image run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImagePoint {
    /// Generator steps.
    pub step: usize,
    /// Network updates (Stage 1 counted).
    pub updates: usize,
    /// Training wall time so far (Stage 1 included, measurements excluded).
    pub seconds: f64,
    /// FD (PCA-32 pixels) to the teacher's Heun samples.
    pub fd_to_teacher: f64,
    /// FD (PCA-32 pixels) to the held-out images.
    pub fd_to_heldout: f64,
}

/// One method's image run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImageMethod {
    /// baseline or disback.
    pub method: String,
    /// Wall time of Stage 1 (0 for the baseline).
    pub stage1_seconds: f64,
    /// Measurements along training.
    pub points: Vec<ImagePoint>,
    /// FID of `n_fid` one-step samples against the held-out images.
    pub fid: Option<FidEstimate>,
}

/// The image part's results.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImageReport {
    /// FD (PCA-32) of the teacher's Heun samples to the held-out images.
    pub teacher_fd_to_heldout: f64,
    /// FID of the teacher's `n_fid` Heun samples (18 steps, 35 NFE).
    pub teacher_fid: Option<FidEstimate>,
    /// Both methods.
    pub methods: Vec<ImageMethod>,
}

struct Pca {
    mean: Vec<f64>,
    basis: Vec<f64>,
    d: usize,
}

impl Pca {
    fn project(&self, x: &[f32]) -> Vec<f64> {
        let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        pca_project(&x, self.d, &self.mean, &self.basis)
    }
    fn fd(&self, a: &[f32], b: &[f32]) -> Result<f64> {
        Ok(frechet_distance(&self.project(a), &self.project(b), 32)?)
    }
}

fn fid_of(
    fid: Option<(&FidInception, &FidReference)>,
    images: &[f32],
    shape: [usize; 4],
) -> Result<Option<FidEstimate>> {
    let Some((net, reference)) = fid else {
        return Ok(None);
    };
    let feats = net.features(&quantize_signed(images)?, shape, 16, |_| {})?;
    Ok(Some(reference.estimate(&feats, 200, 0)?))
}

/// Run the image part, writing `image-<method>.png`, `image-teacher.png` and each
/// generator (`image-<method>/generator.safetensors`) to `out`.
pub fn run_images(
    o: &ImageOptions,
    out: &Path,
    fid: Option<(&FidInception, &FidReference)>,
    progress: &dyn Fn(&str),
) -> Result<ImageReport> {
    let plain = Device::flex();
    let ad = plain.clone().autodiff();
    ad.seed(0);
    let ck = pipeline::shipped_checkpoint();
    let (net, [c, h, w], precond, meta) = pipeline::load_unet(&ck, &ad)?;
    let d = c * h * w;
    let held = pipeline::demo_split()?.1;
    let held_f64: Vec<f64> = held.pixels.iter().map(|&v| v as f64).collect();
    let (mean, basis) = pca_basis(&held_f64, d, 32)?;
    let pca = Pca { mean, basis, d };
    let teacher = Teacher::network(net, precond);
    let n_heun = o.n_eval.max(o.n_fid);
    let t0 = Instant::now();
    let heun = pipeline::heun_samples(
        &teacher.eval,
        precond,
        [c, h, w],
        n_heun,
        18,
        (0, 0xd15b),
        &plain,
        |_| {},
    )?;
    progress(&format!(
        "teacher: {n_heun} Heun samples in {:.0} s",
        t0.elapsed().as_secs_f64()
    ));
    let heun_eval = &heun[..o.n_eval * d];
    let held_eval = &held.pixels[..o.n_eval.min(held.num_images()) * d];
    let grid = |x: &[f32]| {
        score_io::image::image_grid_png(
            &x[..64.min(x.len() / d) * d],
            [64.min(x.len() / d), c, h, w],
            8,
        )
    };
    score_core::fs::write_atomic(&out.join("image-teacher.png"), &grid(&heun)?)?;
    let mut report = ImageReport {
        teacher_fd_to_heldout: pca.fd(heun_eval, held_eval)?,
        teacher_fid: fid_of(fid, &heun, [n_heun, c, h, w])?,
        methods: Vec::new(),
    };
    let z_eval = randn([o.n_eval, c, h, w], &mut stream_rng(0, 0x2e2e, 1), &plain);
    let z_fid = randn([o.n_fid, c, h, w], &mut stream_rng(0, 0x2e2e, 2), &plain);
    for method in [Method::Baseline, Method::Disback] {
        let cfg = image_config(method, o, precond);
        let run = MethodRun {
            o,
            teacher: &teacher,
            extra: meta.config["extra"].clone(),
            shape: [c, h, w],
            pca: &pca,
            heun_eval,
            held_eval,
            z_eval: &z_eval,
            z_fid: &z_fid,
            out,
            fid,
            progress,
        };
        report.methods.push(run.method(method, &cfg)?);
    }
    Ok(report)
}

/// The distillation settings of the image part for `method`.
fn image_config(method: Method, o: &ImageOptions, precond: score_core::Precond) -> DistillConfig {
    let mut cfg = DistillConfig::new(method, o.steps, precond, 0);
    for t in [&mut cfg.generator, &mut cfg.fake] {
        t.batch_size = o.batch;
        t.lr = o.lr;
    }
    cfg.switch_every = o.switch_every;
    cfg.path.steps = o.record_steps;
    cfg.path.checkpoints = cfg.path.checkpoints.min(o.record_steps);
    cfg
}

/// What one method's run of the image part needs.
struct MethodRun<'a> {
    o: &'a ImageOptions,
    teacher: &'a Teacher<'a, 4, UNet>,
    extra: serde_json::Value,
    shape: [usize; 3],
    pca: &'a Pca,
    heun_eval: &'a [f32],
    held_eval: &'a [f32],
    z_eval: &'a burn::tensor::Tensor<4>,
    z_fid: &'a burn::tensor::Tensor<4>,
    out: &'a Path,
    fid: Option<(&'a FidInception, &'a FidReference)>,
    progress: &'a dyn Fn(&str),
}

impl MethodRun<'_> {
    /// Distil the shipped UNet with `method`, measuring along the way; write its
    /// sample grid and run folder.
    fn method(&self, method: Method, cfg: &DistillConfig) -> Result<ImageMethod> {
        let Self {
            o,
            teacher,
            shape: [c, h, w],
            pca,
            heun_eval,
            held_eval,
            out,
            fid,
            progress,
            ..
        } = *self;
        let d = c * h * w;
        let grid = |x: &[f32]| {
            score_io::image::image_grid_png(
                &x[..64.min(x.len() / d) * d],
                [64.min(x.len() / d), c, h, w],
                8,
            )
        };
        let name = serde_json::to_value(method)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let t1 = Instant::now();
        let mut dist = Distiller::new(
            teacher,
            teacher.net.clone(),
            &[c, h, w],
            cfg,
            self.extra.clone(),
            &RunOutput::default(),
        )?;
        let stage1 = t1.elapsed().as_secs_f64();
        let mut points = Vec::new();
        let mut measuring = 0.0;
        let mut observe = |dist: &Distiller<'_, 4, UNet>,
                           _: Option<&disback::distill::StepStats>|
         -> Result<()> {
            if !dist.step().is_multiple_of(o.every.max(1)) && dist.step() != o.steps {
                return Ok(());
            }
            let tm = Instant::now();
            let x = to_vec_f32(dist.sample(self.z_eval.clone()))?;
            points.push(ImagePoint {
                step: dist.step(),
                updates: dist.updates(),
                seconds: t1.elapsed().as_secs_f64() - measuring,
                fd_to_teacher: pca.fd(&x, heun_eval)?,
                fd_to_heldout: pca.fd(&x, held_eval)?,
            });
            measuring += tm.elapsed().as_secs_f64();
            Ok(())
        };
        dist.run(&RunOutput::default(), &mut observe)?;
        let samples = to_vec_f32(dist.sample(self.z_fid.clone()))?;
        score_core::fs::write_atomic(&out.join(format!("image-{name}.png")), &grid(&samples)?)?;
        dist.save(&RunOutput {
            dir: Some(out.join(format!("image-{name}"))),
            ..RunOutput::default()
        })?;
        let fid = fid_of(fid, &samples, [o.n_fid, c, h, w])?;
        if let Some(p) = points.last() {
            progress(&format!(
                "image {name}: {} steps, FD to teacher {:.2}, to held-out {:.2}, FID {:?}, {:.0} s",
                p.step,
                p.fd_to_teacher,
                p.fd_to_heldout,
                fid.map(|f| f.fid),
                p.seconds
            ));
        }
        Ok(ImageMethod {
            method: name,
            stage1_seconds: stage1,
            points,
            fid,
        })
    }
}
