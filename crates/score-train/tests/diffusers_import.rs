//! diffusers' UNet2DModel against the reference: `xtask/fixtures/diffusers_golden.py`
//! builds two small UNet2DModels in diffusers (PyPI) with random weights, saves them as
//! diffusers does (config.json, diffusion_pytorch_model.safetensors in float16,
//! scheduler_config.json) and evaluates k-diffusion's discrete-time wrapper D(x; σ) at
//! σ = 0.05 … 40 in float32 and float64. Here the folder is imported as a user would
//! (`score_train::import::import_diffusers`), written as a checkpoint, loaded as every
//! command loads it, and compared with the float64 output.
//!
//! The bound is score-nn's `edm_golden` one: 8 × the reference's own float32 error
//! (measured by the fixture), floored at 8·2⁻²⁴; a wrong block order, time embedding
//! or head split is off by O(1).

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use score_core::denoiser::{Conditioning, Denoiser};
use score_nn::Preconditioned;
use score_nn::import::StateDict;
use score_train::import::{SchedulerOptions, import_diffusers, write_diffusers_checkpoint};
use score_train::pipeline::{LoadedModel, load_model};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../score-nn/tests/fixtures/diffusers")
}

fn tensor<const D: usize>(sd: &StateDict, key: &str, dev: &Device) -> Tensor<D> {
    let (shape, values) = sd.get(key).unwrap();
    Tensor::from_data(TensorData::new(values.clone(), shape.clone()), dev)
}

fn check(case: &str, labels: bool) {
    let dev = Device::flex();
    let imported = import_diffusers(&dir().join(case), SchedulerOptions::default(), &dev).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("unet.safetensors");
    write_diffusers_checkpoint(&imported, &ck, "fixture").unwrap();
    let (model, precond, _) = load_model(&ck, &dev).unwrap();
    let LoadedModel::Unet(net, chw) = model else {
        panic!("an image network")
    };
    assert_eq!(chw, [3, 16, 16]);
    let g = StateDict::read_safetensors(&dir().join(format!("{case}.golden.safetensors"))).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join(format!("{case}.golden.json"))).unwrap())
            .unwrap();
    let e32 = meta["torch_f32_rel_err"].as_f64().unwrap();
    let cond = Conditioning {
        class_labels: labels.then(|| tensor(&g, "labels", &dev)),
        ..Conditioning::default()
    };
    let d = Preconditioned::new(&net, precond).denoise(
        tensor(&g, "x", &dev),
        tensor(&g, "sigma", &dev),
        Some(&cond),
    );
    let ours = score_core::tensor::to_vec_f32(d).unwrap();
    let (_, d64) = g.get("out64").unwrap();
    let scale = d64.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let err = ours
        .iter()
        .zip(d64)
        .fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()))
        / scale;
    let bound = 8.0 * e32.max(2f64.powi(-24));
    println!("{case}: ours {err:.3e}, torch {e32:.3e}, bound {bound:.3e}");
    assert!(err <= bound, "{case}: error {err:.3e} > bound {bound:.3e}");
}

#[test]
fn ddpm_layout_eps_prediction_matches_diffusers() {
    check("ddpm", false);
}

#[test]
fn multi_head_scale_shift_classes_v_prediction_matches_diffusers() {
    check("vpred", true);
}

#[test]
fn unsupported_diffusers_models_are_refused_by_name() {
    let dev = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let copy = |edit: &dyn Fn(&mut serde_json::Value)| {
        let d = tmp.path().join("m");
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let src = dir().join("ddpm");
        for f in [
            "diffusion_pytorch_model.safetensors",
            "scheduler_config.json",
        ] {
            std::fs::copy(src.join(f), d.join(f)).unwrap();
        }
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
        edit(&mut cfg);
        std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
        import_diffusers(&d, SchedulerOptions::default(), &dev)
            .unwrap_err()
            .to_string()
    };
    let e = copy(&|c| c["_class_name"] = "UNet2DConditionModel".into());
    assert!(e.contains("only UNet2DModel"), "{e}");
    let e = copy(&|c| c["down_block_types"][1] = "SkipDownBlock2D".into());
    assert!(
        e.contains("down_block_types: \"SkipDownBlock2D\" is not supported"),
        "{e}"
    );
    let e = copy(&|c| c["time_embedding_type"] = "fourier".into());
    assert!(e.contains("time_embedding_type"), "{e}");
    let e = copy(&|c| c["block_out_channels"][2] = 48.into());
    assert!(e.contains("shape"), "{e}");
    let e = copy(&|c| {
        c.as_object_mut().unwrap().remove("sample_size");
    });
    assert!(e.contains("sample_size"), "{e}");
    let bad = SchedulerOptions {
        prediction_type: Some("sample".into()),
        ..SchedulerOptions::default()
    };
    let e = import_diffusers(&dir().join("ddpm"), bad, &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("prediction_type"), "{e}");
    // A step count that would build a table of 10^12 levels is refused, not allocated.
    let huge = SchedulerOptions {
        num_train_timesteps: Some(1_000_000_000_000),
        ..SchedulerOptions::default()
    };
    let e = import_diffusers(&dir().join("ddpm"), huge, &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs 2 to 100000 steps"), "{e}");
}
