//! The autoencoder's training through score-train's loop: an interrupted run resumed
//! from its checkpoint ends with the weights of an uninterrupted one, bit for bit.

use musicscore_gen::autoencoder::AutoencoderConfig;
use musicscore_gen::latent::{
    AeData, AeSettings, decode_latents, encode_means, latent_scale, load_autoencoder, psnr,
    train_autoencoder,
};
use score_core::burn::tensor::Device;
use score_train::checkpoint::{CheckpointFile, collect_params};
use score_train::train::{TrainConfig, TrainOutput};

fn images() -> Vec<Vec<f32>> {
    // Eight 8×16 "systems": two horizontal lines at rows that depend on the image.
    (0..8)
        .map(|k| {
            let mut px = vec![1.0f32; 8 * 16];
            for x in 0..16 {
                px[(1 + k % 3) * 16 + x] = -1.0;
                px[(5 + k % 2) * 16 + x] = -1.0;
            }
            px
        })
        .collect()
}

fn settings() -> AeSettings {
    AeSettings {
        autoencoder: AutoencoderConfig::new()
            .with_widths(vec![4, 8])
            .with_latent_channels(2)
            .with_groups(2),
        crop: 8,
        kl_weight: 1e-6,
        image: [8, 16],
        corpus: "test".into(),
        systems: 8,
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        steps: 4,
        batch_size: 2,
        lr: 1e-2,
        warmup_steps: 1,
        grad_clip: None,
        checkpoint_every: 100,
        log_every: 1,
        seed: 3,
        ..TrainConfig::default()
    }
}

fn out(dir: &std::path::Path, stop_after: Option<usize>) -> TrainOutput {
    TrainOutput {
        checkpoint: Some(dir.join("checkpoint.safetensors")),
        log: None,
        progress: false,
        stop_after,
        replicas: Vec::new(),
        keep_checkpoints: false,
    }
}

#[test]
fn an_interrupted_autoencoder_run_resumes_bit_exactly() {
    let dev = Device::flex().autodiff();
    let imgs = images();
    let data = AeData {
        images: &imgs,
        image: [8, 16],
    };
    let (s, cfg) = (settings(), config());
    let whole = tempfile::tempdir().unwrap();
    dev.seed(cfg.seed);
    let (a, _) = train_autoencoder(&data, &s, &cfg, &out(whole.path(), None), None, &dev).unwrap();
    assert_eq!(a.step, 4);
    let parts = tempfile::tempdir().unwrap();
    dev.seed(cfg.seed);
    let (b, _) =
        train_autoencoder(&data, &s, &cfg, &out(parts.path(), Some(2)), None, &dev).unwrap();
    assert_eq!(b.step, 2);
    let ck = CheckpointFile::read(&parts.path().join("checkpoint.safetensors")).unwrap();
    let (b, _) =
        train_autoencoder(&data, &s, &cfg, &out(parts.path(), None), Some(&ck), &dev).unwrap();
    assert_eq!(b.step, 4);
    let (pa, pb) = (collect_params(&a.net), collect_params(&b.net));
    assert_eq!(pa.len(), pb.len());
    for ((na, _, ta), (nb, _, tb)) in pa.iter().zip(&pb) {
        assert_eq!(na, nb);
        assert_eq!(
            ta.as_slice::<f32>().unwrap(),
            tb.as_slice::<f32>().unwrap(),
            "{na}"
        );
    }
    // A resume with another window width is refused, naming both.
    let other = AeSettings {
        crop: 16,
        ..settings()
    };
    let err = train_autoencoder(
        &data,
        &other,
        &cfg,
        &out(parts.path(), None),
        Some(&ck),
        &dev,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("crop 8") && err.contains("crop 16"), "{err}");
    // The saved network loads and round-trips images through its latent space.
    let plain = Device::flex();
    let ae = load_autoencoder(&whole.path().join("checkpoint.safetensors"), &plain).unwrap();
    let z = encode_means(&ae.net, &imgs, [8, 16], &plain).unwrap();
    assert_eq!(z[0].len(), 2 * 4 * 8);
    assert!(latent_scale(&z).is_finite());
    let flat: Vec<f32> = z.iter().flatten().copied().collect();
    let rec = decode_latents(&ae.net, &flat, [2, 4, 8], &plain).unwrap();
    assert_eq!(rec.len(), 8 * 8 * 16);
    assert!(rec.iter().all(|v| (-1.0..=1.0).contains(v)));
}

#[test]
fn psnr_and_scale_follow_their_definitions() {
    // MSE 0.04 on a peak-to-peak range of 2: 10·log10(4 / 0.04) = 20 dB.
    let a = vec![0.0f32; 100];
    let b = vec![0.2f32; 100];
    assert!((psnr(&a, &b) - 20.0).abs() < 1e-5);
    // Values ±2 have standard deviation 2: the scale is 1/2.
    let z = vec![vec![2.0f32, -2.0], vec![2.0, -2.0]];
    assert!((latent_scale(&z) - 0.5).abs() < 1e-12);
}
