//! `scorelab train`: the flags as a `scorelab_run::TrainSpec`, the run
//! (`scorelab_run::train_run`: settings, resume rule, data, network, the loop), the
//! result printed.

use crate::args::*;
use crate::common::*;
use anyhow::{Result, bail};
use score_train::run::RunMode;
use scorelab_run::{TrainReport, TrainSpec};

/// The augmentation the flags ask for (`None` for plain denoising).
pub(crate) fn augment_of(a: &TrainArgs) -> Result<Option<scoreaug::Augment>> {
    use scoreaug::Mode;
    let mode = Mode::parse(a.augment.as_deref().unwrap_or("none"))?;
    let extra = a.aug_p.is_some() || a.aug_transforms.is_some() || a.no_aug_cond;
    if mode == Mode::None {
        if extra || a.nla_set.is_some() {
            bail!("--aug-p, --aug-transforms, --no-aug-cond and --nla-set need --augment");
        }
        return Ok(None);
    }
    let kinds = match &a.aug_transforms {
        Some(t) => scoreaug::transforms::Kind::parse_list(t)?,
        None => scoreaug::transforms::Kind::ALL.to_vec(),
    };
    let aug = scoreaug::Augment::new(mode, a.aug_p.unwrap_or(0.5), kinds, !a.no_aug_cond)?;
    match (a.nla_set.as_deref(), mode) {
        (None | Some("edm"), _) => Ok(Some(aug)),
        (Some("blit"), Mode::Nla | Mode::NlaScoreAug) => Ok(Some(aug.with_blit_nla())),
        (Some("blit"), _) => bail!("--nla-set: needs --augment nla or nla+scoreaug"),
        (Some(other), _) => bail!("--nla-set: '{other}' is neither edm nor blit"),
    }
}

/// `--lr-schedule`: `constant` or `inverse-sqrt:REF_STEPS`.
pub(crate) fn parse_schedule(s: &str) -> Result<score_train::train::LrSchedule> {
    use score_train::train::LrSchedule;
    Ok(match s.split_once(':') {
        None if s == "constant" => LrSchedule::Constant,
        Some(("inverse-sqrt", r)) => LrSchedule::InverseSqrt {
            ref_steps: r
                .parse()
                .map_err(|_| anyhow::anyhow!("--lr-schedule: '{r}' is not a step count"))?,
        },
        _ => bail!("--lr-schedule: '{s}' is neither constant nor inverse-sqrt:REF_STEPS"),
    })
}

/// `--adam-betas b1,b2`.
pub(crate) fn parse_betas(s: &str) -> Result<[f64; 2]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--adam-betas: '{s}' is not two numbers b1,b2"))?;
    match v[..] {
        [a, b] => Ok([a, b]),
        _ => bail!("--adam-betas: '{s}' is not two numbers b1,b2"),
    }
}

/// `--batches`.
pub(crate) fn parse_batches(s: &str) -> Result<score_train::train::BatchOrder> {
    use score_train::train::BatchOrder;
    Ok(match s {
        "epochs" => BatchOrder::Epochs,
        "replacement" => BatchOrder::Replacement,
        _ => bail!("--batches: '{s}' is neither epochs nor replacement"),
    })
}

impl TrainArgs {
    /// The run these flags describe.
    pub(crate) fn spec(&self, c: &Common) -> Result<TrainSpec> {
        let augment_given = self.augment.is_some()
            || self.aug_p.is_some()
            || self.aug_transforms.is_some()
            || self.no_aug_cond
            || self.nla_set.is_some();
        Ok(TrainSpec {
            out: self.out.clone(),
            mode: RunMode::from_flags(self.resume, self.overwrite),
            seed: c.seed_arg,
            data: self.data.clone(),
            data_dir: self.data_dir.clone(),
            xflip: self.xflip,
            resolution: self.resolution,
            subset: self.subset,
            channels: self.channels,
            cond: self.cond.clone(),
            augment: augment_given.then(|| augment_of(self)).transpose()?,
            arch: self.arch.clone(),
            blocks: self.blocks,
            steps: self.steps,
            batch_size: self.batch_size,
            lr: self.lr,
            grad_clip: self.grad_clip,
            checkpoint_every: self.checkpoint_every,
            keep_checkpoints: self.keep_checkpoints,
            weight_decay: self.weight_decay,
            adam_betas: self.adam_betas.as_deref().map(parse_betas).transpose()?,
            lr_schedule: self
                .lr_schedule
                .as_deref()
                .map(parse_schedule)
                .transpose()?,
            grad_accumulation: self.grad_accumulation,
            batches: self.batches.as_deref().map(parse_batches).transpose()?,
            label_dropout: self.label_dropout,
            sigma_data: self.sigma_data,
            progress: !c.json,
            replicas: Vec::new(),
        })
    }
}

/// The devices of a run: `--devices` (the first holds the network) or `--device`.
fn devices_of(c: &Common, a: &TrainArgs) -> Result<Vec<burn::tensor::Device>> {
    let Some(first) = a.devices.first() else {
        return Ok(vec![device(&c.device)?]);
    };
    if c.device != "flex" && &c.device != first {
        anyhow::bail!(
            "--device {} and --devices {}: give one (--devices lists every device, the first holding the network)",
            c.device,
            a.devices.join(",")
        );
    }
    a.devices.iter().map(|d| device(d.trim())).collect()
}

pub(crate) fn cmd_train(c: &Common, a: &TrainArgs) -> Result<()> {
    let mut spec = a.spec(c)?;
    let mut devices = devices_of(c, a)?;
    let main = devices.remove(0);
    spec.replicas = devices;
    if !spec.replicas.is_empty() {
        eprintln!(
            "data parallel over {} devices: {}",
            a.devices.len(),
            a.devices.join(", ")
        );
    }
    let r = scorelab_run::train_run(&spec, &main, &|line| eprintln!("{line}"))?;
    emit(c.json, serde_json::to_value(&r)?, || {
        outln!("{}", train_line(&r))
    });
    Ok(())
}

/// The plain output of `train`.
fn train_line(r: &TrainReport) -> String {
    match r.loss.is_nan() {
        // A resume at or past --steps runs no step: there is no loss to report.
        true => format!(
            "{} is already at step {}: nothing to train (raise --steps to continue)",
            r.checkpoint.display(),
            r.step
        ),
        false => format!(
            "trained to step {} (loss {:.4}) in {:.1} s; checkpoint {}",
            r.step,
            r.loss,
            r.seconds,
            r.checkpoint.display()
        ),
    }
}
