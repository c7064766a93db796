//! `facectl bench`: the figures `make bench` compares with the TensorFlow reference, printed as
//! one `RESULT {json}` line each, in the same shape as the reference scripts print theirs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Subcommand;
use facetrain_worker::backend::training_device;
use facetrain_worker::data::batch::{Batch, Prefetcher, StreamSpec, build_batch};
use facetrain_worker::data::dataset::{LoadOptions, load_dataset};
use facetrain_worker::data::shard::{Pick, ShardPlan};
use facetrain_worker::job::{AugmentSpec, Backend, ModelSpec, OnBadRow, TrainingSpec, WeightInit};
use facetrain_worker::model::Architecture;
use facetrain_worker::train::trainer::{ADAM_EPSILON, Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::args::bounded;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Milliseconds per training step (forward + backward + Adam) on random data.
    Step {
        #[arg(long, num_args = 1.., default_values_t = [100, 32], value_parser = batch)]
        batch: Vec<usize>,
        #[arg(long, default_value_t = 2, value_parser = |t: &str| bounded::<usize>(t, 0..=MAX_ITERATIONS))]
        warmup: usize,
        #[arg(long, default_value_t = 10, value_parser = iterations)]
        steps: usize,
        #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
        backend: BackendArg,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Weight init; the default is the TF reference's (and the tutorial's).
        #[arg(long, value_enum, default_value_t = InitArg::TruncatedNormal)]
        init: InitArg,
    },
    /// Inference latency and throughput on random data.
    Infer {
        #[arg(long, num_args = 1.., default_values_t = [1, 100], value_parser = batch)]
        batch: Vec<usize>,
        #[arg(long, default_value_t = 20, value_parser = iterations)]
        iters: usize,
        /// Weight init, as for `step`.
        #[arg(long, value_enum, default_value_t = InitArg::TruncatedNormal)]
        init: InitArg,
    },
    /// TCP throughput over loopback (the link the ring all-reduce bound is computed from).
    Loopback {
        #[arg(long, default_value_t = 512, value_parser = |t: &str| bounded::<usize>(t, 1..=65536))]
        megabytes: usize,
    },
    /// Input pipeline images/s with the tutorial's augmentations, batched.
    Pipeline {
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
        #[arg(long, default_value_t = 4, value_parser = |t: &str| bounded::<usize>(t, 0..=MAX_ITERATIONS))]
        warmup_batches: usize,
    },
}

/// Repetitions a benchmark flag takes at most.
const MAX_ITERATIONS: u64 = 100_000;

/// A batch as `training.batch_size` allows it.
fn batch(text: &str) -> Result<usize, String> {
    bounded(text, 1..=65536)
}

fn iterations(text: &str) -> Result<usize, String> {
    bounded(text, 1..=MAX_ITERATIONS)
}

/// A duration in seconds, 0.1 to an hour.
fn seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| "expected a number of seconds in 0.1..=3600".to_string())?;
    if !(0.1..=3600.0).contains(&value) {
        return Err(format!("{value} is not in 0.1..=3600 seconds"));
    }
    Ok(value)
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    Flex,
    Tch,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InitArg {
    TruncatedNormal,
    HeNormal,
}

impl InitArg {
    fn init(self) -> WeightInit {
        match self {
            Self::TruncatedNormal => WeightInit::TruncatedNormal,
            Self::HeNormal => WeightInit::HeNormal,
        }
    }
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

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Step { batch, warmup, steps, backend, device, init } => {
            let backend = match backend {
                BackendArg::Flex => Backend::Flex,
                BackendArg::Tch => Backend::Tch,
            };
            tokio::task::spawn_blocking(move || bench_step(&batch, warmup, steps, backend, &device, init.init()))
                .await?
        }
        BenchCommand::Infer { batch, iters, init } => {
            tokio::task::spawn_blocking(move || bench_infer(&batch, iters, init.init())).await?
        }
        BenchCommand::Pipeline { csv, data, batch, batches, seconds, warmup_batches } => {
            anyhow::ensure!(batch > 0, "--batch must be at least 1");
            anyhow::ensure!(seconds.is_finite() && seconds >= 0.0, "--seconds must be a finite number >= 0");
            let budget = TimeBudget { batches, duration: Duration::from_secs_f64(seconds) };
            bench_pipeline(&csv, data, batch, budget, warmup_batches).await
        }
        BenchCommand::Loopback { megabytes } => bench_loopback(megabytes).await,
    }
}

fn random_batch(len: usize, side: usize, classes: usize, seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Batch {
        images: (0..len * 3 * side * side).map(|_| rng.random::<f32>()).collect(),
        labels: (0..len).map(|_| rng.random_range(0..classes)).collect(),
        picks: (0..len).map(|i| Pick { position: i as u64, epoch: 0, row: i }).collect(),
        side,
    }
}

fn trainer(backend: Backend, device: &str, init: WeightInit) -> anyhow::Result<Trainer> {
    let arch = Architecture::new(ModelSpec { init, ..ModelSpec::default() }, 5);
    Ok(Trainer::new(arch, &TrainingSpec::default(), training_device(backend, device)?))
}

/// What a model benchmark ran, in the reference's terms (its RESULT lines carry the same keys).
fn model_settings(init: WeightInit) -> serde_json::Value {
    serde_json::json!({"init": init, "adam_epsilon": adam_epsilon()})
}

/// [`ADAM_EPSILON`] as the decimal it was written as (1e-8, not the f32's 9.99999993922529e-9).
pub fn adam_epsilon() -> f64 {
    ADAM_EPSILON.to_string().parse().expect("an f32 prints as a decimal number")
}

fn bench_step(
    batches: &[usize],
    warmup: usize,
    steps: usize,
    backend: Backend,
    device: &str,
    init: WeightInit,
) -> anyhow::Result<()> {
    let mut per_batch = serde_json::Map::new();
    for &size in batches {
        let mut trainer = trainer(backend, device, init)?;
        let batch = random_batch(size, 96, 5, 1);
        for _ in 0..warmup {
            trainer.train_step(&batch, size, None)?;
        }
        let mut times = Vec::with_capacity(steps);
        for _ in 0..steps {
            let started = Instant::now();
            trainer.train_step(&batch, size, None)?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        per_batch.insert(size.to_string(), serde_json::json!({"ms_per_step": summarize(&times), "samples_ms": times}));
    }
    let mut result = model_settings(init);
    result["bench"] = "step".into();
    result["framework"] = "facetrain".into();
    result["backend"] = format!("{backend:?}").to_lowercase().into();
    result["per_batch"] = per_batch.into();
    emit(result);
    Ok(())
}

fn bench_infer(batches: &[usize], iters: usize, init: WeightInit) -> anyhow::Result<()> {
    let trainer = trainer(Backend::Flex, "cpu", init)?;
    let mut per_batch = serde_json::Map::new();
    for &size in batches {
        let batch = random_batch(size, 96, 5, 2);
        trainer.predict_logits(&batch);
        let times: Vec<f64> = (0..iters)
            .map(|_| {
                let started = Instant::now();
                trainer.predict_logits(&batch);
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        let summary = summarize(&times);
        let median = summary["median"].as_f64().unwrap_or(f64::NAN);
        per_batch.insert(
            size.to_string(),
            serde_json::json!({"ms_per_call": summary, "images_per_s_at_median": size as f64 * 1e3 / median}),
        );
    }
    let mut result = model_settings(init);
    result["bench"] = "infer".into();
    result["framework"] = "facetrain".into();
    result["per_batch"] = per_batch.into();
    emit(result);
    Ok(())
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
    let options = LoadOptions { side: 96, num_classes: None, on_bad_row: OnBadRow::Fail, allow_outside_paths: false };
    let augment = AugmentSpec::default();
    let seed = 1;
    let measured = match data {
        DataArg::Cache => {
            // As training runs: the dataset decoded once (untimed), then the prefetcher augments
            // and batches on its thread while the caller takes batches.
            let dataset = Arc::new(load_dataset(csv, &options).await?);
            let spec = StreamSpec { cursor: 0, global_batch: batch, rank: 0, world: 1, augment, seed };
            tokio::task::spawn_blocking(move || {
                let mut prefetcher = Prefetcher::spawn(dataset, spec, 2);
                for _ in 0..warmup_batches {
                    prefetcher.next_batch();
                }
                let started = Instant::now();
                let mut run = Throughput::default();
                while !budget.spent(run.batches, started) {
                    run.images += prefetcher.next_batch().len();
                    run.batches += 1;
                }
                run.seconds = started.elapsed().as_secs_f64();
                run
            })
            .await?
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
        let mut plan = ShardPlan::new(dataset.len(), seed);
        let first = epoch * dataset.len() as u64;
        (0..dataset.len())
            .step_by(batch)
            .map(|start| {
                let len = batch.min(dataset.len() - start);
                let picks = plan.picks(first + start as u64, len);
                build_batch(&dataset, picks, Some((&augment, seed))).len()
            })
            .fold((0, 0), |(images, batches), len| (images + len, batches + 1))
    })
    .await?;
    Ok(produced)
}

async fn bench_loopback(megabytes: usize) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let total = megabytes * 1024 * 1024;
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut received = 0;
        while received < total {
            let n = socket.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            received += n;
        }
        Ok::<usize, std::io::Error>(received)
    });
    let mut socket = tokio::net::TcpStream::connect(address).await?;
    let chunk = vec![7u8; 1 << 20];
    let started = Instant::now();
    for _ in 0..megabytes {
        socket.write_all(&chunk).await?;
    }
    socket.shutdown().await?;
    let received = reader.await??;
    let seconds = started.elapsed().as_secs_f64();
    emit(
        serde_json::json!({"bench": "loopback", "bytes": received, "seconds": seconds, "bytes_per_s": received as f64 / seconds}),
    );
    Ok(())
}

fn summarize(samples: &[f64]) -> serde_json::Value {
    let mut xs = samples.to_vec();
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return serde_json::json!({"n": 0});
    }
    let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
    serde_json::json!({
        "n": n, "median": median, "mean": xs.iter().sum::<f64>() / n as f64, "min": xs[0], "max": xs[n - 1],
        "p10": xs[(0.1 * (n - 1) as f64) as usize], "p90": xs[(0.9 * (n - 1) as f64) as usize],
    })
}

fn emit(value: serde_json::Value) {
    println!("RESULT {value}");
}
