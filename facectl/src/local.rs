//! `facectl local JOB.toml`: the whole job on this machine, with progress.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Args as ClapArgs;
use facetrain_worker::job::JobSpec;
use facetrain_worker::train::run::run_local;

use crate::output::{Output, print_json};
use crate::progress::ProgressBarReporter;

/// The most steps `--max-steps` takes (far beyond any real job; keeps step arithmetic small).
pub const MAX_STEPS: u64 = 1_000_000_000;

#[derive(ClapArgs, Debug)]
pub struct Args {
    job: PathBuf,
    /// Override training.max_steps.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_STEPS))]
    max_steps: Option<u64>,
    /// Run through an embedded coordinator and in-process workers over loopback gRPC even
    /// with one worker (several workers always do).
    #[arg(long)]
    via_coordinator: bool,
}

impl Args {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let Self { job, max_steps, via_coordinator } = self;
        let mut spec = JobSpec::load(&job)?;
        if let Some(max_steps) = max_steps {
            spec.training.max_steps = max_steps;
            spec.validate().map_err(|e| anyhow::anyhow!("--max-steps: {e}"))?;
        }
        if spec.workers.count > 1 || via_coordinator {
            return run_cluster(&spec, output).await;
        }
        run_here(spec, &job, output).await
    }
}

/// One worker in this process, with a progress bar and Ctrl-C finishing the step.
async fn run_here(spec: JobSpec, job: &Path, output: Output) -> anyhow::Result<()> {
    let name = spec.name.clone();
    let init = spec.model.init;
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
            "ledger": crate::output::ledger_json(&(&summary.ledger).into()),
            "init": init,
            "adam_epsilon": crate::bench::model::adam_epsilon(),
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

/// `[workers] count > 1`: the same job through an embedded coordinator and N workers.
async fn run_cluster(spec: &JobSpec, output: Output) -> anyhow::Result<()> {
    let run = crate::local_cluster::run(spec).await?;
    let (job, wall_seconds) = (&run.job, run.wall_seconds);
    let phases: serde_json::Map<String, serde_json::Value> =
        run.phase_seconds.iter().map(|(phase, seconds)| (phase.to_string(), serde_json::json!(seconds))).collect();
    let running_seconds = crate::output::running_seconds(job);
    let images_per_second = if running_seconds > 0.0 { job.samples_trained as f64 / running_seconds } else { 0.0 };
    match output {
        Output::Json => print_json(&serde_json::json!({
            "name": job.name,
            "steps": job.step,
            "val_accuracy": job.val_accuracy,
            "train_loss": job.train_loss,
            "wall_seconds": wall_seconds,
            "train_seconds": running_seconds,
            "images_per_second": images_per_second,
            "checkpoint": (!job.latest_checkpoint.is_empty()).then_some(job.latest_checkpoint.clone()),
            "stopped": job.message,
            "workers": spec.workers.count,
            "reduction": spec.workers.reduction.name(),
            "incidents": job.incidents.len(),
            "phase_seconds_per_step": phases,
            "reduce_bytes_per_worker_step": run.reduce_bytes_per_worker_step,
            "samples_trained": job.samples_trained,
            "ledger": job.ledger.as_ref().map(crate::output::ledger_json),
        })),
        Output::Text => println!(
            "{}: {} steps on {} workers, validation accuracy {}, train loss {:.4}, {images_per_second:.1} images/s, {wall_seconds:.1} s",
            job.name,
            job.step,
            spec.workers.count,
            job.val_accuracy.map_or("-".into(), |a| format!("{a:.3}")),
            job.train_loss.unwrap_or(f64::NAN)
        ),
    }
    Ok(())
}
