//! Training end to end: the MLP learns a 2-D mixture; resume equals an uninterrupted run;
//! a non-finite loss stops training with an error.

use burn::tensor::Device;
use score_core::metrics::sliced_w2;
use score_core::mixture::GaussianMixture;
use score_core::samplers::{HeunOptions, SampleContext, heun_sample};
use score_core::sigmas::karras_sigmas;
use score_core::tensor::{randn, stream_rng, to_vec_f64};
use score_core::{Precond, ScoreError};
use score_nn::Preconditioned;
use score_nn::mlp::MlpConfig;
use score_train::checkpoint::{CheckpointFile, collect_params};
use score_train::train::{TrainConfig, TrainOutput, VectorData, train};

fn ring_data(n: usize) -> (GaussianMixture, VectorData) {
    let gm = GaussianMixture::ring(8, 2.0, 0.05).unwrap();
    let data = gm.sample(n, &mut stream_rng(5, 0, 0));
    (gm, VectorData { data, dim: 2 })
}

#[test]
fn mlp_learns_the_eight_mode_ring() {
    let device = Device::flex().autodiff();
    let (gm, data) = ring_data(4096);
    let cfg = TrainConfig {
        steps: 1500,
        batch_size: 256,
        lr: 2e-3,
        warmup_steps: 50,
        // A half-life of 50 steps of 256 images, without ramp-up.
        ema_halflife_kimg: 12.8,
        ema_rampup_ratio: None,
        // σ_data of the ring: radius 2 in 2-D gives per-coordinate std sqrt(2) ≈ 1.41.
        precond: Precond::Edm {
            sigma_data: 1.41,
            p_mean: -1.0,
            p_std: 1.4,
        },
        checkpoint_every: 10_000,
        log_every: 100,
        seed: 1,
        ..TrainConfig::default()
    };
    let t0 = std::time::Instant::now();
    let net = MlpConfig::new(2).init(&device);
    let res = train(
        net,
        &data,
        &cfg,
        serde_json::Value::Null,
        &TrainOutput::default(),
        None,
    )
    .unwrap();
    let n = 2000;
    let sigmas = karras_sigmas(32, 0.002, 80.0, 7.0).unwrap();
    let inner = Device::flex();
    let x = randn([n, 2], &mut stream_rng(9, 0, 0), &inner).mul_scalar(80.0);
    let den = Preconditioned::new(&res.ema, cfg.precond);
    let out = heun_sample(
        &den,
        &sigmas,
        x,
        &HeunOptions::default(),
        &mut SampleContext::new(),
    )
    .unwrap();
    let xs = to_vec_f64(out.x).unwrap();
    let elapsed = t0.elapsed().as_secs_f64();

    // Every mode covered: each of the 8 components gets at least half its share.
    let mut counts = [0usize; 8];
    gm.assign(&xs).into_iter().for_each(|k| counts[k] += 1);
    assert!(
        counts.iter().all(|&c| c >= n / 16),
        "mode counts {counts:?}"
    );
    // Threshold: a model that drops one mode (moving its 1/8 of the mass to a
    // neighbour 2·2·sin(π/8) ≈ 1.53 away) adds sqrt(1/8 · 1.53² · ½) ≈ 0.38 of sliced W2
    // (½ = E[u₁²] for a random direction in 2-D); combined with the finite-sample floor
    // of two independent 2000-point samples of this clustered law (≈ 0.14, measured
    // below: per-cluster counts fluctuate by ±16 points) that is ≈ 0.40. We require
    // 0.25, between the floor and a dropped mode, and at most floor + 0.1.
    let truth = gm.sample(n, &mut stream_rng(10, 0, 0));
    let sw = sliced_w2(&xs, &truth, 2, 128, 0).unwrap();
    let floor = sliced_w2(&gm.sample(n, &mut stream_rng(11, 0, 0)), &truth, 2, 128, 0).unwrap();
    eprintln!(
        "sliced W2 to data {sw:.4} (two-sample floor {floor:.4}), modes {counts:?}, {elapsed:.1} s"
    );
    assert!(
        sw < 0.25 && sw < floor + 0.1,
        "sliced W2 {sw} (floor {floor})"
    );
}

#[test]
fn resume_equals_an_uninterrupted_run() {
    let device = Device::flex().autodiff();
    let (_, data) = ring_data(512);
    let cfg = TrainConfig {
        steps: 12,
        batch_size: 32,
        warmup_steps: 4,
        checkpoint_every: 5,
        log_every: 3,
        seed: 4,
        ..TrainConfig::default()
    };
    let mlp = MlpConfig::new(2).with_hidden(32).with_blocks(2);
    let dir = tempfile::tempdir().unwrap();
    let whole_path = dir.path().join("whole.safetensors");
    let part_path = dir.path().join("part.safetensors");

    // Same initial weights for both runs: one initialisation, cloned. (Seeding the device
    // twice would not do: tests run in parallel threads and share its generator.)
    let net0 = mlp.init(&device);
    let out = TrainOutput {
        keep_checkpoints: true,
        checkpoint: Some(whole_path.clone()),
        ..Default::default()
    };
    let whole = train(
        net0.clone(),
        &data,
        &cfg,
        serde_json::Value::Null,
        &out,
        None,
    )
    .unwrap();

    // keep_checkpoints: a copy of every checkpoint written (steps 5, 10 and the end, 12),
    // each with its own step.
    let mut kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("whole.step"))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            "whole.step0000005.safetensors",
            "whole.step0000010.safetensors",
            "whole.step0000012.safetensors"
        ]
    );
    let k10 = score_train::train::kept_checkpoint_path(&whole_path, 10);
    assert_eq!(CheckpointFile::read(&k10).unwrap().meta.step, 10);

    let net = net0;
    let out = TrainOutput {
        keep_checkpoints: false,
        checkpoint: Some(part_path.clone()),
        stop_after: Some(7),
        ..Default::default()
    };
    let first = train(net, &data, &cfg, serde_json::Value::Null, &out, None).unwrap();
    assert_eq!(first.step, 7);
    // A fresh process would rebuild the network from scratch and load the checkpoint.
    let fresh = mlp.init(&device);
    let ck = CheckpointFile::read(&part_path).unwrap();
    assert_eq!(ck.meta.step, 7);
    let out = TrainOutput {
        keep_checkpoints: false,
        checkpoint: Some(part_path.clone()),
        ..Default::default()
    };
    let resumed = train(fresh, &data, &cfg, serde_json::Value::Null, &out, Some(&ck)).unwrap();
    assert_eq!(resumed.step, 12);

    for (a, b) in [(&whole.net, &resumed.net), (&whole.ema, &resumed.ema)] {
        for ((pa, _, da), (pb, _, db)) in collect_params(a).into_iter().zip(collect_params(b)) {
            assert_eq!(pa, pb);
            let (va, vb) = (
                da.try_to_vec::<f32>().unwrap(),
                db.try_to_vec::<f32>().unwrap(),
            );
            let max = va
                .iter()
                .zip(&vb)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            // Same operations on the same inputs in the same order: bit-identical.
            assert_eq!(max, 0.0, "parameter {pa} differs by {max}");
        }
    }
    // The final checkpoints agree too.
    let (a, b) = (
        CheckpointFile::read(&whole_path).unwrap(),
        CheckpointFile::read(&part_path).unwrap(),
    );
    assert_eq!(a.meta.step, b.meta.step);
}

#[test]
fn non_finite_loss_stops_with_an_error() {
    let device = Device::flex().autodiff();
    let data = score_train::train::VectorData {
        data: vec![f64::NAN, 0.0, 1.0, 1.0],
        dim: 2,
    };
    let cfg = TrainConfig {
        steps: 3,
        batch_size: 4,
        ..TrainConfig::default()
    };
    let net = MlpConfig::new(2)
        .with_hidden(8)
        .with_blocks(1)
        .init(&device);
    match train(
        net,
        &data,
        &cfg,
        serde_json::Value::Null,
        &TrainOutput::default(),
        None,
    ) {
        Err(ScoreError::NonFiniteLoss { step: 0, .. }) => {}
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("training on NaN data succeeded"),
    }
}

#[test]
fn corrupt_checkpoint_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.safetensors");
    std::fs::write(&p, b"not a checkpoint").unwrap();
    let msg = CheckpointFile::read(&p)
        .err()
        .expect("must fail")
        .to_string();
    assert!(msg.contains("broken.safetensors"), "{msg}");
}

/// Data parallelism: micro-batch j runs on device j mod k and the gradients are added in
/// the order of j, so two replicas take the step one device takes, to the bit (same
/// backend, same operations, same order), dropout included: each micro-batch seeds its
/// own draws.
#[test]
fn replicas_take_the_step_of_one_device() {
    use score_io::images::ImageDataset;
    use score_train::train::ImageData;
    let device = Device::flex().autodiff();
    let mut rng = stream_rng(11, 0, 0);
    let pixels = (0..16 * 64)
        .map(|_| rand::RngExt::random_range(&mut rng, -1.0f32..1.0))
        .collect();
    let data = ImageData {
        images: ImageDataset {
            pixels,
            labels: vec![0; 16],
            image_shape: [1, 8, 8],
            num_classes: 1,
            source: "test".into(),
        },
        use_labels: false,
    };
    let unet = score_train::pipeline::unet_config_for(8, 1, 8).with_dropout(0.3);
    let net0 = unet.init(&device);
    let cfg = TrainConfig {
        steps: 3,
        batch_size: 8,
        grad_accumulation: 4,
        seed: 2,
        ..TrainConfig::default()
    };
    let run = |replicas: Vec<Device>| {
        let out = TrainOutput {
            replicas,
            ..Default::default()
        };
        let r = train(
            net0.clone(),
            &data,
            &cfg,
            serde_json::Value::Null,
            &out,
            None,
        );
        collect_params(&r.unwrap().net)
    };
    let one = run(Vec::new());
    let two = run(vec![device.clone()]);
    for ((p, _, a), (_, _, b)) in one.iter().zip(&two) {
        assert_eq!(
            a.try_to_vec::<f32>().unwrap(),
            b.try_to_vec::<f32>().unwrap(),
            "parameter {p}"
        );
    }
    // Three devices cannot share four micro-batches evenly: an error naming the field.
    let out = TrainOutput {
        replicas: vec![device.clone(), device.clone()],
        ..Default::default()
    };
    let e = train(net0, &data, &cfg, serde_json::Value::Null, &out, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("grad_accumulation") && e.contains("3 devices"),
        "{e}"
    );
}
