//! `facectl bench pipeline`: input pipeline images/s with the tutorial's augmentations, batched,
//! from the files every epoch or from images decoded once (as training runs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use facetrain_worker::data::batch::{Prefetcher, StreamSpec, build_batch};
use facetrain_worker::data::cache::CacheBudget;
use facetrain_worker::data::dataset::{LoadOptions, load_dataset};
use facetrain_worker::job::{AugmentSpec, OnBadRow};

use super::model::SIDE;
use super::{batch, emit, iterations, warmup};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Training CSV (paths relative to it).
    #[arg(long)]
    csv: String,
    /// `files`: every epoch reads and decodes every image, then augments and batches it;
    /// `cache`: decode once, then augment and batch from the decoded images (as training does).
    #[arg(long, value_enum)]
    data: DataArg,
    #[arg(long, default_value_t = 100, value_parser = batch)]
    batch: usize,
    /// Minimum timed batches (the run goes on until both minimums are met).
    #[arg(long, default_value_t = 10, value_parser = iterations)]
    batches: usize,
    /// Minimum timed seconds.
    #[arg(long, default_value_t = 3.0, value_parser = seconds)]
    seconds: f64,
    /// Untimed batches first (`cache`; `files` warms up with one untimed epoch).
    #[arg(long, default_value_t = 4, value_parser = warmup)]
    warmup_batches: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DataArg {
    Files,
    Cache,
}

impl DataArg {
    fn name(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Cache => "cache",
        }
    }
}

/// A duration in seconds, 0.1 to an hour.
fn seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| "expected a number of seconds in 0.1..=3600".to_string())?;
    if !(0.1..=3600.0).contains(&value) {
        return Err(format!("{value} is not in 0.1..=3600 seconds"));
    }
    Ok(value)
}

impl Args {
    pub async fn run(self) -> anyhow::Result<()> {
        let Self { csv, data, batch, batches, seconds, warmup_batches } = self;
        anyhow::ensure!(batch > 0, "--batch must be at least 1");
        anyhow::ensure!(seconds.is_finite() && seconds >= 0.0, "--seconds must be a finite number >= 0");
        let budget = TimeBudget { batches, duration: Duration::from_secs_f64(seconds) };
        bench_pipeline(&csv, data, batch, budget, warmup_batches).await
    }
}

/// How long a throughput measurement runs: at least `batches` batches and at least `duration`.
#[derive(Debug, Clone, Copy)]
struct TimeBudget {
    batches: usize,
    duration: Duration,
}

impl TimeBudget {
    fn spent(&self, batches: usize, started: Instant) -> bool {
        batches >= self.batches && started.elapsed() >= self.duration
    }
}

/// Images, batches and seconds of one timed run.
#[derive(Debug, Clone, Copy, Default)]
struct Throughput {
    images: usize,
    batches: usize,
    seconds: f64,
}

async fn bench_pipeline(
    csv: &str,
    data: DataArg,
    batch: usize,
    budget: TimeBudget,
    warmup_batches: usize,
) -> anyhow::Result<()> {
    let options = LoadOptions {
        side: SIDE,
        num_classes: None,
        on_bad_row: OnBadRow::Fail,
        allow_outside_paths: false,
        cache: CacheBudget::unlimited(),
    };
    let augment = AugmentSpec::default();
    let seed = 1;
    let measured = match data {
        DataArg::Cache => {
            // As training runs: the dataset decoded once (untimed), then the prefetcher augments
            // and batches on its thread while the caller takes batches.
            let dataset = Arc::new(load_dataset(csv, &options).await?);
            let spec = StreamSpec { cursor: 0, global_batch: batch, rank: 0, world: 1, augment, seed };
            tokio::task::spawn_blocking(move || -> facetrain_worker::Result<Throughput> {
                let mut prefetcher = Prefetcher::spawn(dataset, spec, 2)?;
                for _ in 0..warmup_batches {
                    prefetcher.next_batch()?;
                }
                let started = Instant::now();
                let mut run = Throughput::default();
                while !budget.spent(run.batches, started) {
                    run.images += prefetcher.next_batch()?.len();
                    run.batches += 1;
                }
                run.seconds = started.elapsed().as_secs_f64();
                Ok(run)
            })
            .await??
        }
        DataArg::Files => {
            // Nothing kept between epochs: each one loads the dataset as a job does (the CSV, every
            // image read through the object store and decoded, in parallel), then augments and
            // batches the epoch. The first epoch is the warm-up.
            files_epoch(csv, &options, batch, augment, seed, 0).await?;
            let started = Instant::now();
            let mut run = Throughput::default();
            let mut epoch = 1;
            while !budget.spent(run.batches, started) {
                let (images, batches) = files_epoch(csv, &options, batch, augment, seed, epoch).await?;
                run.images += images;
                run.batches += batches;
                epoch += 1;
            }
            run.seconds = started.elapsed().as_secs_f64();
            run
        }
    };
    emit(serde_json::json!({
        "bench": "pipeline", "framework": "facetrain", "data": data.name(), "batch": batch,
        "images": measured.images, "batches": measured.batches, "wall_s": measured.seconds,
        "images_per_s": measured.images as f64 / measured.seconds, "augment": augment,
        "threads": rayon::current_num_threads(),
    }));
    Ok(())
}

/// One epoch from the files: load (read + decode) every row, then every batch of the epoch,
/// augmented. Returns the images and batches produced.
async fn files_epoch(
    csv: &str,
    options: &LoadOptions,
    batch: usize,
    augment: AugmentSpec,
    seed: u64,
    epoch: u64,
) -> anyhow::Result<(usize, usize)> {
    let dataset = load_dataset(csv, options).await?;
    let produced = tokio::task::spawn_blocking(move || {
        let mut plan = dataset.plan(seed);
        let first = epoch * dataset.len() as u64;
        (0..dataset.len())
            .step_by(batch)
            .map(|start| {
                let len = batch.min(dataset.len() - start);
                let picks = plan.picks(first + start as u64, len);
                build_batch(&dataset, picks, Some((&augment, seed))).map(|batch| batch.len())
            })
            .try_fold((0, 0), |(images, batches), len| len.map(|len| (images + len, batches + 1)))
    })
    .await??;
    Ok(produced)
}
