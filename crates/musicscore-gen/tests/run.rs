//! The training runs as library calls (what `cargo xtask train-musicscore-*` does
//! without the CLI): a text-to-score run resumes, refuses a changed setting by its
//! flag, and an autoencoder run into a locked or occupied folder is refused.
//! Needs the MiniLM encoder (`cargo xtask minilm-setup`, run by .ci/run).

use std::sync::{Arc, Mutex};

use musicscore_gen::run::{AeRunSpec, TextRunSpec, train_ae, train_text};
use musicscore_gen::systems::{CorpusSpec, Feedback};
use score_core::burn::tensor::Device;
use score_core::error::ScoreError;
use score_train::run::RunMode;

fn shipped() -> CorpusSpec {
    CorpusSpec::new(format!(
        "{}/../../data/musicscore",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// Feedback that keeps the notes and counts the pages cut.
#[derive(Default)]
struct Kept {
    notes: Mutex<Vec<String>>,
    cut: Mutex<u64>,
}

impl Feedback for Kept {
    fn note(&self, m: &str) {
        self.notes.lock().unwrap().push(m.into());
    }
    fn cutting(&self, _: &std::path::Path, _: u64, _: u64) {
        *self.cut.lock().unwrap() += 1;
    }
}

#[test]
fn a_text_run_resumes_through_the_library_and_keeps_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let kept = Arc::new(Kept::default());
    let fb: Arc<dyn Feedback> = kept.clone();
    let dev = Device::flex();
    let mut spec = TextRunSpec::new(shipped(), dir.path().join("run"), 2);
    spec.batch = Some(4);
    let r = train_text(&spec, &dev, &fb).unwrap();
    assert_eq!(r.step, 2);
    assert!(r.loss.is_finite() && r.record.systems > 50, "{r:?}");
    assert!(*kept.cut.lock().unwrap() > 0);
    let notes = kept.notes.lock().unwrap().join("\n");
    assert!(
        notes.contains("systems") && notes.contains("σ_data"),
        "{notes}"
    );
    // A second new run into the folder is refused; resume continues it.
    let e = train_text(&spec, &dev, &fb).unwrap_err().to_string();
    assert!(e.contains("is already there"), "{e}");
    spec.mode = RunMode::Resume;
    spec.steps = 3;
    spec.batch = Some(8);
    let e = train_text(&spec, &dev, &fb).unwrap_err();
    assert!(
        matches!(&e, musicscore_data::MusicScoreError::Core(ScoreError::FixedOnResume { setting, .. }) if setting == "--batch"),
        "{e}"
    );
    spec.batch = None;
    assert_eq!(train_text(&spec, &dev, &fb).unwrap().step, 3);
}

#[test]
fn an_autoencoder_run_refuses_settings_it_cannot_train_with_before_reading_pages() {
    let dir = tempfile::tempdir().unwrap();
    let fb: Arc<dyn Feedback> = Arc::new(musicscore_gen::systems::Silent);
    let mut spec = AeRunSpec::new(shipped(), dir.path().join("ae"), 1);
    spec.crop = Some(130);
    let e = train_ae(&spec, &Device::flex(), &fb)
        .unwrap_err()
        .to_string();
    assert!(e.contains("crop 130"), "{e}");
}
