//! How results reach the user: JSON on stdout for programs, a progress bar on a terminal,
//! plain log lines otherwise.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use facetrain_worker::train::evaluate::Evaluation;
use facetrain_worker::train::run::{Progress, StartInfo, StepReport};
use indicatif::{ProgressBar, ProgressStyle};

pub fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string(value).expect("JSON values serialise"));
}

/// The sample ledger as `--output json` shows it (the digest in hex: JSON numbers lose u64s).
pub fn ledger_json(ledger: &facetrain_proto::pb::SampleLedger) -> serde_json::Value {
    serde_json::json!({
        "rows": ledger.rows,
        "next_position": ledger.next_position,
        "positions_trained": ledger.positions_trained,
        "epochs_checked": ledger.epochs_checked,
        "digest": format!("{:016x}", ledger.digest),
    })
}

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
                    .expect("valid template")
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
        let accuracy = self.last_accuracy.lock().expect("not poisoned").map_or("-".to_string(), |a| format!("{a:.3}"));
        let message = format!("loss {:.4} val_acc {accuracy} {:.0} img/s", report.loss, report.images_per_second);
        match &self.bar {
            Some(bar) => {
                bar.set_position(report.step);
                bar.set_message(message);
            }
            None => {
                let mut last = self.last_line.lock().expect("not poisoned");
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
        *self.last_accuracy.lock().expect("not poisoned") = Some(evaluation.accuracy);
        if self.bar.is_none() {
            *self.last_line.lock().expect("not poisoned") = Instant::now();
            eprintln!("step {step} validation accuracy {:.3} ({} samples)", evaluation.accuracy, evaluation.samples);
        }
    }

    fn checkpointed(&self, step: u64, location: &str) {
        tracing::info!(step, checkpoint = location, "checkpoint written");
    }
}
