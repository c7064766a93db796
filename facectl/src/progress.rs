//! Progress of a training run on stderr: a bar on a terminal, occasional plain lines otherwise
//! (a log file or CI keeps them; a bar would be noise there).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use facetrain_worker::train::evaluate::Evaluation;
use facetrain_worker::train::run::{Progress, StartInfo, StepReport};
use indicatif::{ProgressBar, ProgressStyle};

/// Progress of a training run on stderr.
pub struct ProgressBarReporter {
    bar: Option<ProgressBar>,
    /// Without a terminal: a line at every evaluation, and at most every 30 s otherwise.
    last_line: Mutex<Instant>,
    eval_every: u64,
    last_accuracy: Mutex<Option<f64>>,
}

impl ProgressBarReporter {
    pub fn new(terminal: bool, eval_every: u64) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] step {pos}/{len} {msg} (eta {eta})")
                    // The template is fixed and valid; a plain bar would do if indicatif ever disagreed.
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Self { bar, last_line: Mutex::new(Instant::now()), eval_every, last_accuracy: Mutex::new(None) }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for ProgressBarReporter {
    fn started(&self, info: &StartInfo) {
        let message = format!(
            "training on {} images ({} classes, {} validation), {} parameters, steps {}..{}{}",
            info.train_samples,
            info.num_classes,
            info.validate_samples,
            info.parameters,
            info.first_step,
            info.max_steps,
            if info.skipped_rows > 0 { format!(", {} bad rows skipped", info.skipped_rows) } else { String::new() }
        );
        match &self.bar {
            Some(bar) => {
                bar.set_length(info.max_steps);
                bar.set_position(info.first_step);
                bar.println(message);
            }
            None => eprintln!("{message}"),
        }
    }

    fn step(&self, report: &StepReport) {
        let accuracy = lock(&self.last_accuracy).map_or("-".to_string(), |a| format!("{a:.3}"));
        let message = format!("loss {:.4} val_acc {accuracy} {:.0} img/s", report.loss, report.images_per_second);
        match &self.bar {
            Some(bar) => {
                bar.set_position(report.step);
                bar.set_message(message);
            }
            None => {
                let mut last = lock(&self.last_line);
                if last.elapsed() >= Duration::from_secs(30)
                    && (self.eval_every == 0 || !report.step.is_multiple_of(self.eval_every))
                {
                    *last = Instant::now();
                    eprintln!("step {} {message}", report.step);
                }
            }
        }
    }

    fn evaluated(&self, step: u64, evaluation: &Evaluation) {
        *lock(&self.last_accuracy) = Some(evaluation.accuracy);
        if self.bar.is_none() {
            *lock(&self.last_line) = Instant::now();
            eprintln!("step {step} validation accuracy {:.3} ({} samples)", evaluation.accuracy, evaluation.samples);
        }
    }

    fn checkpointed(&self, step: u64, location: &str) {
        tracing::info!(step, checkpoint = location, "checkpoint written");
    }
}

/// A panic elsewhere while holding the lock leaves a value that is still fine to show.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
