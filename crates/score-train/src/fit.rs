//! The one training loop. A run is a [`TrainStep`] (what one optimisation step does
//! and how the run's state is saved: DSM training of one network, distillation's
//! generator-and-fake-score step, …) driven by [`fit`] over a [`Schedule`]; progress,
//! the JSON-lines log and anything else that watches a run are [`Observer`]s.
//!
//! The loop owns the cadence (log every `log_every` steps and at the end, save every
//! `checkpoint_every` steps and at the end) and the bookkeeping of the last saved
//! step, which a failure names ([`ScoreError::NonFiniteLoss`],
//! [`ScoreError::Diverged`]). It writes nothing of its own: the observers do, and the
//! caller chooses them ([`ProgressBar`] for a terminal, [`JsonLinesLog`] for a file).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use score_core::error::{Result, ScoreError};

/// One optimisation step of a run and how the run is saved.
pub trait TrainStep {
    /// Run the optimisation step with index `step` (0-based).
    fn step(&mut self, step: usize) -> Result<()>;
    /// The log record after `done` steps, at a log point (a JSON object; the loop
    /// adds nothing). `clock` says how long the run has taken since this call began.
    fn log_record(&mut self, done: usize, clock: &Clock) -> Result<serde_json::Value>;
    /// A one-line status for a progress display.
    fn status(&self) -> String;
    /// Save the run's state after `done` steps (atomically); false when the run
    /// writes nothing (no output folder).
    fn save(&mut self, done: usize) -> Result<bool>;
}

/// Watches a run. Every method has a default that does nothing.
pub trait Observer {
    /// Before the first step: the run goes from `start` to `end` of `total` steps.
    fn started(&mut self, _start: usize, _end: usize, _total: usize) -> Result<()> {
        Ok(())
    }
    /// After each step, with the step's status line.
    fn stepped(&mut self, _done: usize, _status: &str) -> Result<()> {
        Ok(())
    }
    /// At each log point, with the step's log record.
    fn logged(&mut self, _done: usize, _record: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    /// After the state was saved at `done` steps.
    fn saved(&mut self, _done: usize) -> Result<()> {
        Ok(())
    }
    /// When the run ends, `ok` or not.
    fn finished(&mut self, _ok: bool) {}
}

/// Where a run starts and stops and how often it logs and saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Steps already done (0, or the resumed checkpoint's step).
    pub start: usize,
    /// Stop after this many steps in all (`total`, or earlier for a partial call).
    pub end: usize,
    /// The run's whole length.
    pub total: usize,
    /// Log every this many steps (and at `end`).
    pub log_every: usize,
    /// Save every this many steps (and at `end`).
    pub checkpoint_every: usize,
    /// The step of the last state on disk before this call, if any.
    pub saved: Option<usize>,
}

/// The run's clock: time since [`fit`] began and the steps done since.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    t0: Instant,
    start: usize,
}

impl Clock {
    /// Seconds since the loop began.
    pub fn elapsed_s(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }
    /// Steps per second since the loop began, with `done` steps done in all.
    pub fn rate(&self, done: usize) -> f64 {
        (done - self.start) as f64 / self.elapsed_s().max(1e-9)
    }
}

/// What [`fit`] returns.
#[derive(Debug, Clone, Copy)]
pub struct FitResult {
    /// Seconds the loop took.
    pub seconds: f64,
    /// The last step saved, if any.
    pub saved: Option<usize>,
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ask every running [`fit`] to stop after its current step: it saves (unless that step
/// was just saved) and returns [`ScoreError::Interrupted`]. A Ctrl-C handler calls this.
pub fn request_stop() {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// Drive `run` from `schedule.start` to `schedule.end`. A loss failure
/// (non-finite, divergence) comes back naming the last step saved.
pub fn fit(
    run: &mut dyn TrainStep,
    schedule: &Schedule,
    observers: &mut [&mut dyn Observer],
) -> Result<FitResult> {
    let clock = Clock {
        t0: Instant::now(),
        start: schedule.start,
    };
    let mut saved = schedule.saved;
    let out = (|| -> Result<()> {
        for o in observers.iter_mut() {
            o.started(schedule.start, schedule.end, schedule.total)?;
        }
        for step in schedule.start..schedule.end {
            run.step(step).map_err(|e| e.with_checkpoint(saved))?;
            let done = step + 1;
            let due = |every: usize| done % every.max(1) == 0 || done == schedule.end;
            if due(schedule.log_every) {
                let record = run.log_record(done, &clock)?;
                for o in observers.iter_mut() {
                    o.logged(done, &record)?;
                }
            }
            let status = run.status();
            for o in observers.iter_mut() {
                o.stepped(done, &status)?;
            }
            let stop = stop_requested() && done < schedule.end;
            if (due(schedule.checkpoint_every) || stop) && run.save(done)? {
                saved = Some(done);
                for o in observers.iter_mut() {
                    o.saved(done)?;
                }
            }
            if stop {
                return Err(ScoreError::Interrupted {
                    step: done,
                    checkpoint_step: saved,
                });
            }
        }
        Ok(())
    })();
    for o in observers.iter_mut() {
        o.finished(out.is_ok());
    }
    out.map(|()| FitResult {
        seconds: clock.elapsed_s(),
        saved,
    })
}

/// A progress bar on the terminal (indicatif): position, the step's status, ETA.
pub struct ProgressBar {
    what: String,
    bar: Option<indicatif::ProgressBar>,
}

/// Where progress bars draw: the terminal when stderr is one; otherwise (a pipe, `nohup`,
/// a batch job) a plain line with the bar's text every [`PLAIN_EVERY`], as tqdm does off
/// a terminal, so that a log shows the step, the rate and the ETA.
pub fn draw_target() -> indicatif::ProgressDrawTarget {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::term_like_with_hz(Box::new(PlainLines::default()), 1)
    }
}

/// The interval of the plain progress lines off a terminal.
pub const PLAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A terminal stand-in that turns a bar's redraws into a line on stderr every
/// [`PLAIN_EVERY`] (the first draw at once); cursor moves and clears are dropped.
#[derive(Debug, Default)]
struct PlainLines {
    last: std::sync::Mutex<Option<Instant>>,
}

impl indicatif::TermLike for PlainLines {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY);
        if due && !s.trim().is_empty() {
            *last = Some(Instant::now());
            writeln!(std::io::stderr(), "{}", s.trim_end())?;
        }
        Ok(())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write_line(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl ProgressBar {
    /// A bar labelled `what` ("train", "distill", …).
    pub fn new(what: &str) -> Self {
        Self {
            what: what.into(),
            bar: None,
        }
    }
}

impl Observer for ProgressBar {
    fn started(&mut self, start: usize, _end: usize, total: usize) -> Result<()> {
        let b = indicatif::ProgressBar::with_draw_target(Some(total as u64), draw_target())
            .with_position(start as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{spinner}} {} [{{bar:30}}] {{pos}}/{{len}} steps  {{msg}}  ETA {{eta}}",
                self.what
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar = Some(b);
        Ok(())
    }
    fn stepped(&mut self, done: usize, status: &str) -> Result<()> {
        if let Some(b) = &self.bar {
            b.set_message(status.to_string());
            b.set_position(done as u64);
        }
        Ok(())
    }
    fn finished(&mut self, ok: bool) {
        if let Some(b) = self.bar.take() {
            if ok { b.finish() } else { b.abandon() }
        }
    }
}

/// The JSON-lines log: one record per log point, appended as one write (a kill leaves
/// a whole line or none). On start, records past the start step (and a partial last
/// line) are dropped, so that a resumed run's log reads as one run.
pub struct JsonLinesLog {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl JsonLinesLog {
    /// A log at `path`.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            file: None,
        }
    }
}

impl Observer for JsonLinesLog {
    fn started(&mut self, start: usize, _end: usize, _total: usize) -> Result<()> {
        trim_log(&self.path, start)?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| ScoreError::io(&self.path, e))?;
        self.file = Some(f);
        Ok(())
    }
    fn logged(&mut self, _done: usize, record: &serde_json::Value) -> Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.write_all(format!("{record}\n").as_bytes())
                .map_err(|e| ScoreError::io(&self.path, e))?;
        }
        Ok(())
    }
}

/// Keep the lines of a JSON-lines training log whose `step` is at most `step` and drop
/// any partial line (a kill during a write), so that a resumed run does not repeat the
/// steps after its checkpoint or append to a broken line. Rewritten atomically.
pub fn trim_log(path: &std::path::Path, step: usize) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ScoreError::io(path, e)),
    };
    let kept: String = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .collect();
    if kept != text {
        score_core::fs::write_atomic(path, kept.as_bytes())?;
    }
    Ok(())
}
