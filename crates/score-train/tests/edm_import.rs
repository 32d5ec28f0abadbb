//! Importing EDM networks: an EDM-format snapshot (`xtask/fixtures/edm_pickle.py`: the
//! structure EDM's `pickle.dump` writes, persistent classes and inline storages) and a
//! safetensors state dict, each written as a scorelab checkpoint, read back through the
//! loader every command uses, and evaluated against the PyTorch golden output of the same
//! weights (`xtask/fixtures/edm_golden.py`, the bound derived in score-nn's
//! `tests/edm_golden.rs`: 8 × the reference's own float32 error). Damaged inputs are
//! errors naming what is wrong.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use score_core::denoiser::{Conditioning, Denoiser};
use score_nn::Preconditioned;
use score_nn::import::StateDict;
use score_train::pipeline::{LoadedModel, load_model};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../score-nn/tests/fixtures/edm")
        .join(name)
}

fn tensor<const D: usize>(sd: &StateDict, key: &str, dev: &Device) -> Tensor<D> {
    let (shape, values) = sd.get(key).unwrap();
    Tensor::from_data(TensorData::new(values.clone(), shape.clone()), dev)
}

/// A golden case's state dict without the golden tensors (the `model.*` keys, as EDM's
/// `EDMPrecond.state_dict()` has them), the whole file, and its description.
fn case_weights(case: &str) -> (StateDict, StateDict, score_train::import::EdmDescription) {
    let sd = StateDict::read_safetensors(&fixture(&format!("{case}.safetensors"))).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("{case}.json"))).unwrap()).unwrap();
    let weights = StateDict {
        tensors: sd
            .tensors
            .iter()
            .filter(|(k, _)| k.starts_with("model."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        source: sd.source.clone(),
    };
    (weights, sd, serde_json::from_value(meta).unwrap())
}

/// Load `checkpoint` as every command does and compare D(x; σ) with case's golden.
fn check_against_golden(checkpoint: &std::path::Path, case: &str, labels: bool, augment: bool) {
    let dev = Device::flex();
    let (model, precond, _) = load_model(checkpoint, &dev).unwrap();
    let LoadedModel::Unet(net, chw) = model else {
        panic!("an image network")
    };
    assert_eq!(chw, [3, 16, 16]);
    let sd = StateDict::read_safetensors(&fixture(&format!("{case}.safetensors"))).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("{case}.json"))).unwrap()).unwrap();
    let e32 = meta["torch_f32_rel_err"].as_f64().unwrap();
    let cond = Conditioning {
        class_labels: labels.then(|| tensor(&sd, "golden.labels", &dev)),
        augment: augment.then(|| tensor(&sd, "golden.augment", &dev)),
        ..Conditioning::default()
    };
    let d = Preconditioned::new(&net, precond).denoise(
        tensor(&sd, "golden.x", &dev),
        tensor(&sd, "golden.sigma", &dev),
        Some(&cond),
    );
    let ours = score_core::tensor::to_vec_f32(d).unwrap();
    let (_, d64) = sd.get("golden.out64").unwrap();
    let scale = d64.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let err = ours
        .iter()
        .zip(d64)
        .fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()))
        / scale;
    let bound = 8.0 * e32.max(2f64.powi(-24));
    assert!(err <= bound, "{case}: error {err:.3e} > bound {bound:.3e}");
}

#[test]
fn edm_snapshot_pickle_imports_and_matches_pytorch() {
    let dev = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ncsnpp.safetensors");
    let imported =
        score_train::edm_pickle::import_edm_pickle(&fixture("ncsnpp-snapshot.pkl"), "ema", &dev)
            .unwrap();
    let d = &imported.description;
    assert_eq!(d.network.model_type, "SongUNet");
    assert_eq!(d.network.embedding_type.as_deref(), Some("fourier"));
    assert_eq!(d.network.label_dim, 10);
    assert!(matches!(
        d.precond,
        score_nn::edm::EdmPrecondConfig::Ve { sigma_min, sigma_max } if sigma_min == 0.02 && sigma_max == 100.0
    ));
    score_train::import::write_edm_checkpoint(&imported, &out, "fixture").unwrap();
    check_against_golden(&out, "ncsnpp", true, false);
}

#[test]
fn safetensors_state_dict_imports_and_matches_pytorch() {
    let dev = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    // The golden file holds the state dict and golden.* tensors: keep model.* only.
    let (weights, _, desc) = case_weights("ddpmpp");
    let imported = score_train::import::edm_from_state_dict(&weights, desc, &dev).unwrap();
    let out = dir.path().join("ddpmpp.safetensors");
    score_train::import::write_edm_checkpoint(&imported, &out, "fixture").unwrap();
    check_against_golden(&out, "ddpmpp", false, true);
}

#[test]
fn damaged_imports_name_what_is_wrong() {
    let dev = Device::flex();
    let (model_only, sd, desc) = case_weights("adm");
    let err = |sd: StateDict, desc: score_train::import::EdmDescription| {
        score_train::import::edm_from_state_dict(&sd, desc, &dev)
            .unwrap_err()
            .to_string()
    };
    // A missing tensor.
    let mut missing = model_only.clone();
    missing.tensors.remove("model.enc.8x8_block0.qkv.weight");
    assert!(err(missing, desc.clone()).contains("'enc.8x8_block0.qkv.weight' is missing"));
    // A shape mismatch.
    let mut wrong = model_only.clone();
    wrong.tensors.get_mut("model.map_layer0.weight").unwrap().0 = vec![1, 1];
    assert!(err(wrong, desc.clone()).contains("'map_layer0.weight': shape [1, 1]"));
    // An extra tensor.
    let mut extra = model_only.clone();
    extra.tensors.insert(
        "model.enc.99x99_block0.conv0.weight".into(),
        (vec![1], vec![0.0]),
    );
    assert!(
        err(extra, desc.clone()).contains("'enc.99x99_block0.conv0.weight' matches no parameter")
    );
    // The wrong configuration for the weights.
    let mut other = desc.clone();
    other.network.model_channels = Some(16);
    assert!(err(model_only.clone(), other).contains("shape"));
    // A tensor outside model.*.
    assert!(err(sd, desc).contains("'golden."));
}

#[test]
fn hostile_pickles_are_refused_naming_the_problem() {
    let dev = Device::flex();
    let bytes = std::fs::read(fixture("ncsnpp-snapshot.pkl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let import = |p: &std::path::Path, key: &str| {
        score_train::edm_pickle::import_edm_pickle(p, key, &dev)
            .unwrap_err()
            .to_string()
    };
    // A class outside a module tree (os.system) inside the network is refused by
    // name; nothing is ever called.
    let mut p = vec![0x80, 4, b'}', b'(', 0x8c, 3];
    p.extend_from_slice(b"ema");
    p.extend_from_slice(&[0x8c, 2]);
    p.extend_from_slice(b"os");
    p.extend_from_slice(&[0x8c, 6]);
    p.extend_from_slice(b"system");
    p.extend_from_slice(&[0x93, 0x8c, 4]);
    p.extend_from_slice(b"echo");
    p.extend_from_slice(&[0x85, b'R', b'u', b'.']);
    let e = import(&write("evil.pkl", &p), "ema");
    assert!(e.contains("os.system is not part of a network"), "{e}");
    // Truncated snapshots and a missing key.
    for cut in [10, bytes.len() / 2, bytes.len() - 1] {
        let e = import(&write("cut.pkl", &bytes[..cut]), "ema");
        assert!(e.contains("not a readable pickle"), "{e}");
    }
    let e = import(&fixture("ncsnpp-snapshot.pkl"), "generator");
    assert!(e.contains("no network under 'generator'"), "{e}");
}

#[test]
fn iddpm_state_dict_imports_with_twice_the_outputs_and_matches_pytorch() {
    let dev = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let (weights, _, desc) = case_weights("adm-iddpm");
    // An M that would build a table of 10^12 levels is refused.
    let mut huge = desc.clone();
    huge.precond = score_nn::edm::EdmPrecondConfig::Iddpm {
        c1: 0.001,
        c2: 0.008,
        m: 1e12,
    };
    let e = score_train::import::edm_from_state_dict(&weights, huge, &dev).unwrap_err();
    assert!(e.to_string().contains("iDDPMPrecond's M"), "{e}");
    // The same network under EDMPrecond would return 6 channels for 3: refused.
    let mut wrong = desc.clone();
    wrong.precond = score_nn::edm::EdmPrecondConfig::Edm { sigma_data: 0.5 };
    let e = score_train::import::edm_from_state_dict(&weights, wrong, &dev).unwrap_err();
    assert!(e.to_string().contains("out_channels 6, expected 3"), "{e}");
    let imported = score_train::import::edm_from_state_dict(&weights, desc, &dev).unwrap();
    let out = dir.path().join("iddpm.safetensors");
    score_train::import::write_edm_checkpoint(&imported, &out, "fixture").unwrap();
    check_against_golden(&out, "adm-iddpm", true, false);
}

/// An EDM network trains through the one training loop and resumes bit-exactly: a run
/// stopped after 2 of 4 steps and resumed from its checkpoint by a fresh network ends
/// with the same weights and EMA as the uninterrupted run.
#[test]
fn edm_network_resumes_bit_exactly() {
    use score_train::checkpoint::{CheckpointFile, collect_params};
    use score_train::train::{ImageData, TrainConfig, TrainOutput, train};
    let dev = Device::flex().autodiff();
    let images = score_io::images::ImageDataset::fashion_mnist(None, score_io::images::Split::Test)
        .unwrap()
        .balanced_subset(32);
    let data = ImageData {
        images,
        use_labels: false,
    };
    let cfg_net = score_nn::edm::EdmNetConfig {
        model_channels: Some(8),
        channel_mult: Some(vec![1, 2]),
        num_blocks: Some(1),
        attn_resolutions: Some(vec![14]),
        dropout: Some(0.0),
        ..score_nn::edm::EdmNetConfig::ddpmpp(28, 1)
    };
    let cfg = TrainConfig {
        steps: 4,
        batch_size: 4,
        warmup_steps: 2,
        checkpoint_every: 2,
        seed: 3,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (whole_path, part_path) = (
        dir.path().join("w.safetensors"),
        dir.path().join("p.safetensors"),
    );
    let net0 = cfg_net.init(&dev).unwrap();
    let out = |p: &std::path::Path, stop| TrainOutput {
        checkpoint: Some(p.to_path_buf()),
        stop_after: stop,
        ..Default::default()
    };
    let whole = train(
        net0.clone(),
        &data,
        &cfg,
        serde_json::Value::Null,
        &out(&whole_path, None),
        None,
    )
    .unwrap();
    let first = train(
        net0,
        &data,
        &cfg,
        serde_json::Value::Null,
        &out(&part_path, Some(2)),
        None,
    )
    .unwrap();
    assert_eq!(first.step, 2);
    let ck = CheckpointFile::read(&part_path).unwrap();
    let fresh = cfg_net.init(&dev).unwrap();
    let resumed = train(
        fresh,
        &data,
        &cfg,
        serde_json::Value::Null,
        &out(&part_path, None),
        Some(&ck),
    )
    .unwrap();
    assert_eq!(resumed.step, 4);
    for (a, b) in [(&whole.net, &resumed.net), (&whole.ema, &resumed.ema)] {
        for ((pa, _, da), (_, _, db)) in collect_params(a).into_iter().zip(collect_params(b)) {
            let (va, vb) = (
                da.try_to_vec::<f32>().unwrap(),
                db.try_to_vec::<f32>().unwrap(),
            );
            assert!(va == vb, "parameter {pa} differs after resume");
        }
    }
}
