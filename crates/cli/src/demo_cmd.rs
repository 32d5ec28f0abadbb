//! `scorelab demo`: the main job (sample the shipped UNet, or train one first, and
//! measure it).

use crate::args::*;
use crate::common::ensure_sampling_fits;
use crate::common::*;
use anyhow::{Context, Result};
use score_core::fs::write_atomic_all;
use score_core::samplers::Sampler;
use score_core::sigmas::GridKind;
use score_core::tensor::to_vec_f32;
use score_io::image::image_grid_png;
use score_io::npy::npy_f32_bytes;
use score_train::pipeline::{self, LoadedModel};
use std::time::Instant;

pub(crate) fn cmd_demo(c: &Common, a: &DemoArgs) -> Result<()> {
    let dev = device(&c.device)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let t0 = Instant::now();
    let (train_set, held) = pipeline::demo_split()?;
    let ck_path = demo_checkpoint(c, a, &train_set, &dev)?;
    let (net, [ch, h, w], precond, meta) = pipeline::load_unet(&ck_path, &dev)?;
    ensure_sampling_fits(
        &LoadedModel::Unet(
            score_nn::network::ImageNet::Scorelab(net.clone()),
            [ch, h, w],
        ),
        a.n,
    )?;
    let sampler = Sampler::Heun(Default::default());
    let sigmas = GridKind::Karras.build(a.steps, 0.002, 80.0)?;
    let shape = [a.n, ch, h, w];
    let noise =
        score_core::tensor::from_f32(initial_noise(None, &shape, c.seed(), &dev)?, shape, &dev);
    let pb = (!c.json).then(|| bar((sigmas.len() - 1) as u64, "heun"));
    let ts = Instant::now();
    let none = pipeline::ImageCondition::none();
    let out = pipeline::generate_images(&net, precond, &sampler, &sigmas, noise, &none, |i, _| {
        if let Some(b) = &pb {
            b.set_position(i as u64)
        }
    })?;
    if let Some(b) = pb {
        b.finish_and_clear();
    }
    let sample_secs = ts.elapsed().as_secs_f64();
    let v = to_vec_f32(out.x)?;
    let grid = a.out.join("samples.png");
    let real: Vec<f32> = held.pixels[..a.n.min(held.num_images()) * ch * h * w].to_vec();
    let (npy, real_png) = (a.out.join("samples.npy"), a.out.join("real.png"));
    write_atomic_all(&[
        (&grid, &image_grid_png(&v, shape, 8)?),
        (&npy, &npy_f32_bytes(&shape, &v)?),
        (
            &real_png,
            &image_grid_png(&real, [a.n.min(held.num_images()), ch, h, w], 8)?,
        ),
    ])?;
    let gen64: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    let m = pipeline::image_metrics(&gen64, &held.rows_f64(), &train_set.rows_f64(), ch * h * w)?;
    let fid = if a.no_fid {
        serde_json::json!({ "skipped": "--no-fid" })
    } else {
        scorelab_run::fid::demo_fid(
            &v,
            shape,
            &train_set,
            &held,
            &crate::feedback::Bars::new(c.json, "images"),
            &dev,
        )?
    };
    let secs = t0.elapsed().as_secs_f64();
    let report = serde_json::json!({
        "checkpoint": ck_path, "trained_steps": meta.step, "sampler": "heun", "steps": a.steps, "nfe": out.nfe,
        "sample_seconds": sample_secs, "total_seconds": secs, "grid": grid, "metrics": m, "fid": fid,
    });
    score_core::fs::write_atomic(
        &a.out.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    emit(c.json, report.clone(), || print_demo(&report, a));
    Ok(())
}

/// The checkpoint the demo samples: `--checkpoint`, the shipped one, or (`--train`) one
/// trained from scratch into `<out>/train` first.
fn demo_checkpoint(
    c: &Common,
    a: &DemoArgs,
    train_set: &score_io::images::ImageDataset,
    dev: &burn::tensor::Device,
) -> Result<std::path::PathBuf> {
    Ok(if a.train {
        let out = a.out.join("train");
        eprintln!(
            "training a UNet from scratch on {} images for {} steps",
            train_set.num_images(),
            a.train_steps
        );
        pipeline::train_demo_unet(a.train_steps, c.seed(), &out, !c.json, dev, false, None)?;
        out.join("checkpoint.safetensors")
    } else {
        a.checkpoint
            .clone()
            .unwrap_or_else(pipeline::shipped_checkpoint)
    })
}

/// The demo's report as text, one line per measure.
fn print_demo(report: &serde_json::Value, a: &DemoArgs) {
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let m = &report["metrics"];
    let path = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    outln!(
        "checkpoint      {} ({} training steps)",
        path(&report["checkpoint"]),
        report["trained_steps"]
    );
    outln!(
        "sampling        Heun, {} levels, {} network evaluations, {:.1} s for {} images",
        a.steps,
        report["nfe"],
        num(&report["sample_seconds"]),
        a.n
    );
    outln!(
        "image grid      {}   (real held-out images: {})",
        path(&report["grid"]),
        a.out.join("real.png").display()
    );
    outln!(
        "sliced W2       {:.4} to held-out images (real-vs-real floor at this size: {:.4})",
        num(&m["sliced_w2_to_heldout"]),
        num(&m["sliced_w2_real_floor"])
    );
    outln!(
        "NN distance     generated→train {:.3}, held-out→train {:.3}",
        num(&m["nn_dist_generated_to_train"]),
        num(&m["nn_dist_heldout_to_train"])
    );
    outln!(
        "memorisation    {:.3} (fraction of samples nearer than 1/3 of the 2nd neighbour)",
        num(&m["memorization_rate"])
    );
    outln!(
        "pixel mean/std  {:.3} / {:.3} (real: about -0.43 / 0.71)",
        num(&m["pixel_mean"]),
        num(&m["pixel_std"])
    );
    print_demo_fid(&report["fid"]);
    outln!(
        "total           {:.1} s; report {}",
        num(&report["total_seconds"]),
        a.out.join("report.json").display()
    );
}

pub(crate) fn print_demo_fid(fid: &serde_json::Value) {
    if let Some(why) = fid["skipped"].as_str() {
        outln!("FID             skipped: {why}");
        return;
    }
    let get = |k: &str, f: &str| fid[k][f].as_f64().unwrap_or(f64::NAN);
    outln!(
        "FID             {:.2} ± {:.2} for {} samples vs the {} held-out images; {} real training images score {:.2} ± {:.2} (FID is biased upward at small n: compare the two)",
        get("fid", "fid"),
        get("fid", "std_error"),
        fid["fid"]["n"],
        fid["fid"]["n_ref"],
        fid["real_floor"]["n"],
        get("real_floor", "fid"),
        get("real_floor", "std_error"),
    );
}
