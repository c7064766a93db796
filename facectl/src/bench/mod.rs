//! `facectl bench`: the figures `make bench` compares with the TensorFlow reference, printed as
//! one `RESULT {json}` line each, in the same shape as the reference scripts print theirs.

pub mod infer;
pub mod loopback;
pub mod model;
pub mod pipeline;
pub mod step;

use clap::Subcommand;

use crate::args::bounded;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Milliseconds per training step (forward + backward + Adam) on random data.
    Step(step::Args),
    /// Inference latency and throughput on random data.
    Infer(infer::Args),
    /// TCP throughput over loopback (the link the ring all-reduce bound is computed from).
    Loopback(loopback::Args),
    /// Input pipeline images/s with the tutorial's augmentations, batched.
    Pipeline(pipeline::Args),
}

impl Command {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Self::Step(args) => args.run().await,
            Self::Infer(args) => args.run().await,
            Self::Loopback(args) => args.run().await,
            Self::Pipeline(args) => args.run().await,
        }
    }
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

/// Untimed repetitions first (none is allowed).
fn warmup(text: &str) -> Result<usize, String> {
    bounded(text, 0..=MAX_ITERATIONS)
}

/// Median, mean, extremes and deciles of the timed samples.
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

/// One result line, as the reference scripts print theirs.
fn emit(value: serde_json::Value) {
    println!("RESULT {value}");
}
