//! Progress bars and messages for the library pipelines (musicscore-gen's [`Feedback`],
//! scorelab-run's FID [`Progress`]): one bar at a time on stderr, none with `--json`
//! (warnings are printed either way).

use std::path::Path;
use std::sync::{Arc, Mutex};

use indicatif::ProgressBar;
use musicscore_gen::systems::Feedback;
use scorelab_run::fid::Progress;

use crate::common::{bar_of, spinner};

/// Bars on stderr unless `json`.
pub(crate) struct Bars {
    json: bool,
    /// What a step of a computation counts (`steps`, `images`).
    unit: &'static str,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    /// Bars whose computations count `unit`s.
    pub(crate) fn new(json: bool, unit: &'static str) -> Self {
        Self {
            json,
            unit,
            bar: Mutex::new(None),
        }
    }

    /// As musicscore-gen's feedback object (computations count steps).
    pub(crate) fn shared(json: bool) -> Arc<dyn Feedback> {
        Arc::new(Self::new(json, "steps"))
    }

    /// Update the current bar, creating it with `make` when there is none.
    fn with(&self, make: impl FnOnce() -> Option<ProgressBar>, f: impl FnOnce(&ProgressBar)) {
        if self.json {
            return;
        }
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = make();
        }
        if let Some(b) = slot.as_ref() {
            f(b);
        }
    }

    fn finish(&self) {
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = slot.take() {
            b.finish_and_clear();
        }
    }
}

impl Feedback for Bars {
    fn reading(&self, layout: &Path, pages: u64) {
        let name = layout.display().to_string();
        self.with(
            || spinner(false, format!("reading {name}")),
            |b| b.set_message(format!("reading {name}: {pages} pages")),
        );
    }

    fn read(&self, _layout: &Path) {
        self.finish();
    }

    fn cutting(&self, _layout: &Path, done: u64, total: u64) {
        self.with(
            || Some(bar_of(total, "systems", "pages")),
            |b| b.set_position(done),
        );
    }

    fn cut(&self, _layout: &Path) {
        self.finish();
    }

    fn step(&self, what: &str, i: u64, n: u64) {
        self.with(|| Some(bar_of(n, what, self.unit)), |b| b.set_position(i));
    }

    fn done(&self, _what: &str) {
        self.finish();
    }

    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }

    fn note(&self, message: &str) {
        if !self.json {
            eprintln!("{message}");
        }
    }

    fn training_bar(&self) -> bool {
        !self.json
    }
}

impl Progress for Bars {
    fn step(&self, what: &str, done: u64, total: u64) {
        Feedback::step(self, what, done, total);
        if done >= total {
            self.finish();
        }
    }

    fn note(&self, line: &str) {
        Feedback::note(self, line);
    }
}
