//! `facectl local JOB.toml`: the whole job on this machine, with progress.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use facetrain_worker::job::JobSpec;
use facetrain_worker::train::run::run_local;

use crate::cli::Output;
use crate::output::{ProgressBarReporter, print_json};

pub async fn run(job: &Path, output: Output, max_steps: Option<u64>) -> anyhow::Result<()> {
    let mut spec = JobSpec::load(job)?;
    if let Some(max_steps) = max_steps {
        spec.training.max_steps = max_steps;
        spec.validate().map_err(|e| anyhow::anyhow!("--max-steps: {e}"))?;
    }
    let name = spec.name.clone();
    let interrupt = Arc::new(AtomicBool::new(false));
    let on_signal = interrupt.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing the step and writing a checkpoint (Ctrl-C again to abort)");
            on_signal.store(true, Ordering::Relaxed);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let reporter = Arc::new(ProgressBarReporter::new(std::io::stderr().is_terminal(), spec.training.eval_every));
    let summary = run_local(spec, reporter.clone(), interrupt)
        .await
        .with_context(|| format!("job {name} ({}) failed", job.display()))?;
    reporter.finish();
    match output {
        Output::Json => print_json(&serde_json::json!({
            "name": name,
            "steps": summary.steps,
            "val_accuracy": summary.val_accuracy,
            "train_loss": summary.train_loss,
            "wall_seconds": summary.wall_seconds,
            "train_seconds": summary.train_seconds,
            "images_per_second": summary.images_per_second,
            "checkpoint": summary.checkpoint,
            "stopped": summary.stopped,
            "resumed_from_step": summary.resumed_from_step,
            "skipped_rows": summary.skipped_rows,
            "resized_images": summary.resized_images,
            "accuracy_curve": summary.accuracy_curve,
            "per_class_accuracy": summary.evaluation.per_class_accuracy,
            "class_names": summary.evaluation.class_names,
        })),
        Output::Text => {
            println!(
                "{name}: {} steps, validation accuracy {:.3}, train loss {:.4}, {:.1} images/s, {:.1} s ({:?})",
                summary.steps,
                summary.val_accuracy,
                summary.train_loss,
                summary.images_per_second,
                summary.wall_seconds,
                summary.stopped
            );
            if let Some(checkpoint) = &summary.checkpoint {
                println!("checkpoint: {checkpoint}");
            }
            if summary.skipped_rows > 0 {
                println!("skipped {} bad rows (on_bad_row = \"skip\")", summary.skipped_rows);
            }
        }
    }
    Ok(())
}
