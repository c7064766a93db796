//! `facectl bench`: the figures `make bench` compares with the TensorFlow reference, printed as
//! one `RESULT {json}` line each, in the same shape as the reference scripts print theirs.

use std::sync::Arc;
use std::time::Instant;

use clap::Subcommand;
use facetrain_worker::backend::training_device;
use facetrain_worker::data::batch::{Batch, Prefetcher, StreamSpec};
use facetrain_worker::data::dataset::{LoadOptions, load_dataset};
use facetrain_worker::data::image::decode_rgb;
use facetrain_worker::data::shard::Pick;
use facetrain_worker::job::{AugmentSpec, Backend, ModelSpec, OnBadRow, TrainingSpec};
use facetrain_worker::model::Architecture;
use facetrain_worker::storage::Location;
use facetrain_worker::train::trainer::Trainer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Milliseconds per training step (forward + backward + Adam) on random data.
    Step {
        #[arg(long, num_args = 1.., default_values_t = [100, 32], value_parser = batch)]
        batch: Vec<usize>,
        #[arg(long, default_value_t = 2, value_parser = |t: &str| bounded(t, 0..=MAX_ITERATIONS))]
        warmup: usize,
        #[arg(long, default_value_t = 10, value_parser = iterations)]
        steps: usize,
        #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
        backend: BackendArg,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Inference latency and throughput on random data.
    Infer {
        #[arg(long, num_args = 1.., default_values_t = [1, 100], value_parser = batch)]
        batch: Vec<usize>,
        #[arg(long, default_value_t = 20, value_parser = iterations)]
        iters: usize,
    },
    /// TCP throughput over loopback (the link the ring all-reduce bound is computed from).
    Loopback {
        #[arg(long, default_value_t = 512, value_parser = |t: &str| bounded(t, 1..=65536))]
        megabytes: usize,
    },
    /// Input pipeline images/s: decode + augment + batch.
    Pipeline {
        /// Training CSV (paths relative to it).
        #[arg(long)]
        csv: String,
        #[arg(long, default_value_t = 100, value_parser = batch)]
        batch: usize,
        #[arg(long, default_value_t = 40, value_parser = iterations)]
        batches: usize,
    },
}

/// Repetitions a benchmark flag takes at most.
const MAX_ITERATIONS: u64 = 100_000;

fn bounded(text: &str, range: std::ops::RangeInclusive<u64>) -> Result<usize, String> {
    crate::cli::bounded(text, range).map(|v| v as usize)
}

/// A batch as `training.batch_size` allows it.
fn batch(text: &str) -> Result<usize, String> {
    bounded(text, 1..=65536)
}

fn iterations(text: &str) -> Result<usize, String> {
    bounded(text, 1..=MAX_ITERATIONS)
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    Flex,
    Tch,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Step { batch, warmup, steps, backend, device } => {
            let backend = match backend {
                BackendArg::Flex => Backend::Flex,
                BackendArg::Tch => Backend::Tch,
            };
            tokio::task::spawn_blocking(move || bench_step(&batch, warmup, steps, backend, &device)).await?
        }
        BenchCommand::Infer { batch, iters } => tokio::task::spawn_blocking(move || bench_infer(&batch, iters)).await?,
        BenchCommand::Pipeline { csv, batch, batches } => bench_pipeline(&csv, batch, batches).await,
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

fn trainer(backend: Backend, device: &str) -> anyhow::Result<Trainer> {
    let arch = Architecture::new(ModelSpec::default(), 5);
    Ok(Trainer::new(arch, &TrainingSpec::default(), training_device(backend, device)?))
}

fn bench_step(batches: &[usize], warmup: usize, steps: usize, backend: Backend, device: &str) -> anyhow::Result<()> {
    let mut per_batch = serde_json::Map::new();
    for &size in batches {
        let mut trainer = trainer(backend, device)?;
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
    emit(
        serde_json::json!({"bench": "step", "framework": "facetrain", "backend": format!("{backend:?}").to_lowercase(), "per_batch": per_batch}),
    );
    Ok(())
}

fn bench_infer(batches: &[usize], iters: usize) -> anyhow::Result<()> {
    let trainer = trainer(Backend::Flex, "cpu")?;
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
    emit(serde_json::json!({"bench": "infer", "framework": "facetrain", "per_batch": per_batch}));
    Ok(())
}

async fn bench_pipeline(csv: &str, batch: usize, batches: usize) -> anyhow::Result<()> {
    // Decode every image each time, as a pipeline without a cache would.
    let options = LoadOptions { side: 96, num_classes: None, on_bad_row: OnBadRow::Fail, allow_outside_paths: false };
    let csv_location = Location::parse(csv)?;
    let dataset = Arc::new(load_dataset(csv, &options).await?);
    let mut files = Vec::with_capacity(dataset.len());
    for row in &dataset.rows {
        files.push(csv_location.sibling(&row.path)?.read().await?);
    }
    let total = batch * batches;
    let started = Instant::now();
    let decoded: usize =
        (0..total).into_par_iter().map(|i| usize::from(decode_rgb(&files[i % files.len()], 96).is_ok())).sum();
    let decode_per_s = decoded as f64 / started.elapsed().as_secs_f64();

    let spec =
        StreamSpec { cursor: 0, global_batch: batch, rank: 0, world: 1, augment: AugmentSpec::default(), seed: 1 };
    let result = tokio::task::spawn_blocking(move || {
        let mut prefetcher = Prefetcher::spawn(dataset, spec, 2);
        for _ in 0..2 {
            prefetcher.next_batch();
        }
        let started = Instant::now();
        let images: usize = (0..batches).map(|_| prefetcher.next_batch().len()).sum();
        images as f64 / started.elapsed().as_secs_f64()
    })
    .await?;
    // Training decodes once (the dataset is cached decoded) and augments every epoch, so the
    // steady-state rate is augment+batch; a cold epoch also pays the decode.
    let cold = 1.0 / (1.0 / decode_per_s + 1.0 / result);
    emit(serde_json::json!({
        "bench": "pipeline", "framework": "facetrain", "batch": batch, "images": batch * batches,
        "images_per_s": result, "decode_images_per_s": decode_per_s, "images_per_s_with_decode": cold,
        "threads": rayon::current_num_threads(),
    }));
    Ok(())
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
