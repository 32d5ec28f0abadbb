//! Training a network, as `scorelab train` does: the run folder opened and locked, the
//! settings from the spec or (on resume) the checkpoint, the data opened and its
//! fingerprint checked, σ_data of a new run, `config.toml` written, and the MLP (vectors)
//! or an image network trained through score-train's loop with its objective (plain
//! denoising, ScoreAug, NLA).

use std::path::PathBuf;
use std::time::Instant;

use score_nn::mlp::MlpConfig;
use score_train::pipeline::ModelSpec;
use score_train::run::RunDir;
use score_train::train::{ImageData, StreamedImageData, TrainOutput, VectorData, train};
use serde::Serialize;

use crate::error::{Result, invalid};
use crate::record::RunRecord;
use crate::train_data::{
    TrainData, check_fingerprint, check_vector_run, new_precond, open_train_data, prepare_images,
    streamed_precond,
};
use crate::train_net::{DataShape, train_images};
use crate::train_spec::{TrainSpec, settings};

/// What a training run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// The checkpoint written.
    pub checkpoint: PathBuf,
    /// The step it holds.
    pub step: usize,
    /// The last loss (NaN when the run was already at its step count).
    pub loss: f64,
    /// Wall time of the loop.
    pub seconds: f64,
}

/// Train (or resume) as `spec` says on `device` (the autodiff flag is added here);
/// `note` receives the lines worth telling (the resume's changes, the data).
pub fn train_run(
    spec: &TrainSpec,
    device: &burn::tensor::Device,
    note: &dyn Fn(&str),
) -> Result<TrainReport> {
    let dev = device.clone().autodiff();
    let mut run = RunDir::open(&spec.out, spec.mode)?;
    let (ck_path, resume) = (run.checkpoint.clone(), run.resume.take());
    let (mut cfg, mut rec, resumed) = settings(spec, &ck_path, resume.as_ref())?;
    if let Some(line) = resumed {
        note(&line);
    }
    dev.seed(cfg.seed);
    let out = output(spec, &run);
    let data = open_train_data(&rec)?;
    check_fingerprint(&mut rec, &data, &ck_path)?;
    let record = rec.clone();
    let with_record = |model: ModelSpec| -> Result<serde_json::Value> {
        let mut extra = model.to_json();
        extra["cli"] = serde_json::to_value(&record).map_err(|e| invalid(e.to_string()))?;
        Ok(extra)
    };
    let run = (&out, resume.as_ref());
    let t0 = Instant::now();
    let (step, loss) = match data {
        TrainData::Vectors(arr, d) => {
            check_vector_run(&rec)?;
            if resume.is_none() {
                cfg.precond =
                    new_precond(spec.sigma_data, &rec.data, &mut arr.data.iter().copied())?;
            }
            crate::run_file::write(&spec.out, &cfg, &rec)?;
            let data = VectorData {
                data: arr.data,
                dim: d,
            };
            train_mlp(&data, (&rec, &cfg), &with_record, run, &dev)?
        }
        TrainData::Images(images) => {
            let images = prepare_images(images, &rec)?;
            note(&format!("data: {}", images.source));
            if resume.is_none() {
                let values = &mut images.pixels.iter().map(|&v| v as f64);
                cfg.precond = new_precond(spec.sigma_data, &rec.data, values)?;
            }
            crate::run_file::write(&spec.out, &cfg, &rec)?;
            let shape = DataShape {
                image_shape: images.image_shape,
                num_classes: images.num_classes,
                source: images.source.clone(),
            };
            let data = ImageData {
                images,
                use_labels: rec.cond == "class",
            };
            train_images(&data, &shape, (&rec, &cfg), &with_record, run, &dev)?
        }
        TrainData::Streamed(folder) => {
            crate::train_data::check_subset(&rec, folder.len())?;
            let data = StreamedImageData::new(folder, rec.subset, rec.xflip, rec.cond == "class");
            let shape = streamed_shape(&data, &rec);
            note(&format!("data: {} (read image by image)", shape.source));
            if resume.is_none() {
                cfg.precond = streamed_precond(spec.sigma_data, &rec, &data)?;
            }
            crate::run_file::write(&spec.out, &cfg, &rec)?;
            train_images(&data, &shape, (&rec, &cfg), &with_record, run, &dev)?
        }
    };
    Ok(TrainReport {
        checkpoint: ck_path,
        step,
        loss,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Where a run writes: its checkpoint (and kept ones) and log, progress when asked.
fn output(spec: &TrainSpec, run: &RunDir) -> TrainOutput {
    TrainOutput {
        keep_checkpoints: spec.keep_checkpoints,
        checkpoint: Some(run.checkpoint.clone()),
        log: Some(run.log()),
        progress: spec.progress,
        stop_after: None,
        replicas: spec.replicas.iter().map(|d| d.clone().autodiff()).collect(),
    }
}

/// Train the MLP on vectors: the step reached and the last loss.
fn train_mlp(
    data: &VectorData,
    (rec, cfg): (&RunRecord, &score_train::train::TrainConfig),
    with_record: &dyn Fn(ModelSpec) -> Result<serde_json::Value>,
    (out, resume): (&TrainOutput, Option<&score_train::CheckpointFile>),
    dev: &burn::tensor::Device,
) -> Result<(usize, f64)> {
    let mlp = MlpConfig::new(data.dim).with_seed(cfg.seed);
    let extra = with_record(ModelSpec::mlp(&mlp, &rec.data))?;
    let r = train(mlp.init(dev), data, cfg, extra, out, resume)?;
    Ok((r.step, r.last_loss))
}

/// A streamed folder's shape, its source stating the subset and x-flip as
/// `prepare_images` does.
fn streamed_shape(d: &StreamedImageData, rec: &RunRecord) -> DataShape {
    let mut source = d.folder.source.clone();
    if rec.subset > 0 {
        source = format!("{source} (balanced subset of {})", rec.subset);
    }
    if rec.xflip {
        source = format!("{source} (x-flipped copies added)");
    }
    DataShape {
        image_shape: d.folder.image_shape,
        num_classes: d.folder.num_classes,
        source,
    }
}
