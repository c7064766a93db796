//! `facectl bench step`: milliseconds per training step (forward, backward and Adam) per batch
//! size, on random data.

use std::time::Instant;

use clap::Args as ClapArgs;
use facetrain_worker::job::{Backend, WeightInit};

use super::model::{BackendArg, InitArg, model_settings, random_batch, trainer};
use super::{batch, emit, iterations, summarize, warmup};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[arg(long, num_args = 1.., default_values_t = [100, 32], value_parser = batch)]
    batch: Vec<usize>,
    #[arg(long, default_value_t = 2, value_parser = warmup)]
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
}

impl Args {
    pub async fn run(self) -> anyhow::Result<()> {
        let backend = self.backend.backend();
        // Training is CPU-bound work: off the async runtime, as a job runs it.
        tokio::task::spawn_blocking(move || {
            bench_step(&self.batch, self.warmup, self.steps, backend, &self.device, self.init.init())
        })
        .await?
    }
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
        let batch = random_batch(size, 1);
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
    result["backend"] = backend.name().into();
    result["device"] = device.into();
    result["per_batch"] = per_batch.into();
    emit(result);
    Ok(())
}
