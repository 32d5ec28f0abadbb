//! A training run's image network: scorelab's UNet or EDM's (`ddpmpp`, `ncsnpp`, `adm`)
//! at the data's shape and the run's width, with label and augmentation inputs; the
//! memory check of one step; training it through score-train's loop.

use score_nn::edm::EdmNetConfig;
use score_nn::unet::{UNetConfig, pass_bytes};
use score_train::pipeline::{self, ModelSpec};
use score_train::train::{Objective, TrainConfig, TrainOutput};

use crate::error::{Result, invalid};
use crate::record::RunRecord;

/// What the network and the checkpoint need to know of the training images.
pub(crate) struct DataShape {
    pub(crate) image_shape: [usize; 3],
    pub(crate) num_classes: usize,
    pub(crate) source: String,
}

/// The demo's UNet at the data's shape and the run's width, with a label input for
/// class conditioning and an augmentation input for an augmentation objective.
fn unet_for(images: &DataShape, rec: &RunRecord) -> Result<UNetConfig> {
    let [c, h, _] = images.image_shape;
    let mut unet = match rec.layout_by_resolution {
        true => pipeline::unet_config_for(h, c, rec.channels),
        // Runs begun before the layout followed the resolution resume as they began.
        false => pipeline::demo_unet_config().with_model_channels(rec.channels),
    };
    unet.resolution = h;
    unet.in_channels = c;
    if rec.cond == "class" {
        if images.num_classes < 2 {
            return Err(invalid(format!(
                "--cond class: {} has no class labels (a folder takes them from its sub-folders or a metadata.jsonl/metadata.csv with file_name and label)",
                images.source
            )));
        }
        unet.label_dim = images.num_classes;
    }
    if let Some(aug) = &rec.augment {
        unet.augment_dim = aug.augment_dim();
    }
    unet.validate().map_err(|e| {
        let fix = match rec.resolution {
            Some(_) => "choose another --resolution",
            None => "resize them with --resolution",
        };
        invalid(format!(
            "{c}×{h}×{} images ({}): the UNet's {e}; {fix}",
            images.image_shape[2], rec.data
        ))
    })?;
    Ok(unet)
}

/// EDM's published configuration of `rec.arch` at the data's shape: the run's width as
/// model_channels, its blocks per level, the label and augment inputs of the scorelab
/// UNet `unet` would have, attention at half the resolution (EDM's 16 of 32).
fn edm_for(unet: &UNetConfig, rec: &RunRecord) -> Result<EdmNetConfig> {
    let (res, c) = (unet.resolution, unet.in_channels);
    let base = match rec.arch.as_str() {
        "ddpmpp" => EdmNetConfig::ddpmpp(res, c),
        "ncsnpp" => EdmNetConfig::ncsnpp(res, c),
        _ => EdmNetConfig::adm(res, c),
    };
    let (mult, attn) = match rec.layout_by_resolution {
        true => pipeline::edm_layout_for(&rec.arch, res),
        false if rec.arch == "adm" => (vec![1, 2, 2], res / 2),
        false => (vec![2, 2, 2], res / 2),
    };
    let cfg = EdmNetConfig {
        model_channels: Some(rec.channels),
        channel_mult: Some(mult),
        num_blocks: Some(rec.blocks),
        attn_resolutions: Some(vec![attn]),
        label_dim: unet.label_dim,
        augment_dim: unet.augment_dim,
        dropout: Some(0.0),
        ..base
    };
    cfg.resolved()
        .map_err(|e| invalid(format!("--arch {}: {e}", rec.arch)))
}

/// Refuse a step whose working memory cannot fit: three times the UNet estimate
/// (`score_nn::unet::pass_bytes`) per image of a micro-batch (the backward pass keeps
/// the forward maps and as many gradients), times the blocks per level of an EDM
/// network against the scorelab UNet's one.
fn ensure_step_fits(
    widest: usize,
    blocks: usize,
    micro_batch: usize,
    chw: [usize; 3],
    (what, hint): (&str, &str),
) -> Result<()> {
    let per_image = 3 * pass_bytes(chw, widest) * blocks.max(1) as u128;
    score_core::limits::ensure_fits(
        what,
        (micro_batch.max(1) as u128).saturating_mul(per_image),
        hint,
    )?;
    Ok(())
}

/// Train an image network (scorelab's UNet, or EDM's) on `data`: the step reached and
/// the last loss. `with_record` turns the network's description into the checkpoint's
/// `config.extra`.
pub(crate) fn train_images(
    data: &dyn score_train::train::TrainData<4>,
    shape: &DataShape,
    (rec, cfg): (&RunRecord, &TrainConfig),
    with_record: &dyn Fn(ModelSpec) -> Result<serde_json::Value>,
    (out, resume): (&TrainOutput, Option<&score_train::CheckpointFile>),
    dev: &burn::tensor::Device,
) -> Result<(usize, f64)> {
    let unet = unet_for(shape, rec)?;
    let micro = cfg.batch_size / cfg.grad_accumulation.max(1);
    let objective: &dyn Objective<4> = match &rec.augment {
        Some(aug) => aug,
        None => &score_train::train::Denoising,
    };
    if rec.arch != "scorelab" {
        let edm = edm_for(&unet, rec)?;
        let widest = edm.model_channels.unwrap_or(1)
            * edm
                .channel_mult
                .as_ref()
                .and_then(|m| m.iter().copied().max())
                .unwrap_or(1);
        ensure_step_fits(
            widest,
            edm.num_blocks.unwrap_or(1),
            micro,
            shape.image_shape,
            (
                "--batch-size/--channels/--blocks",
                "use a smaller --batch-size (with --grad-accumulation), --channels or --blocks",
            ),
        )?;
        let spec = ModelSpec::Edm {
            config: serde_json::to_value(&edm).map_err(|e| invalid(e.to_string()))?,
            image_shape: shape.image_shape,
            dataset: shape.source.clone(),
        };
        let net = edm.init(dev).map_err(invalid)?;
        let r = score_train::train::train_with(
            net,
            data,
            cfg,
            objective,
            with_record(spec)?,
            out,
            resume,
        )?;
        Ok((r.step, r.last_loss))
    } else {
        let widest = unet
            .model_channels
            .saturating_mul(unet.channel_mult.iter().copied().max().unwrap_or(1));
        ensure_step_fits(
            widest,
            1,
            micro,
            shape.image_shape,
            (
                "--batch-size/--channels",
                "use a smaller --batch-size (with --grad-accumulation for the same step) or --channels",
            ),
        )?;
        let extra = with_record(ModelSpec::unet(&unet, shape.image_shape, &shape.source))?;
        let r = score_train::train::train_with(
            unet.init(dev),
            data,
            cfg,
            objective,
            extra,
            out,
            resume,
        )?;
        Ok((r.step, r.last_loss))
    }
}
