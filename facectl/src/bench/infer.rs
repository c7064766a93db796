//! `facectl bench infer`: inference latency and throughput per batch size, on random data.

use std::time::Instant;

use clap::Args as ClapArgs;
use facetrain_worker::job::{Backend, WeightInit};

use super::model::{BackendArg, InitArg, model_settings, random_batch, trainer};
use super::{batch, emit, iterations, summarize};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[arg(long, num_args = 1.., default_values_t = [1, 100], value_parser = batch)]
    batch: Vec<usize>,
    #[arg(long, default_value_t = 20, value_parser = iterations)]
    iters: usize,
    /// Weight init, as for `step`.
    #[arg(long, value_enum, default_value_t = InitArg::TruncatedNormal)]
    init: InitArg,
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    backend: BackendArg,
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl Args {
    pub async fn run(self) -> anyhow::Result<()> {
        let backend = self.backend.backend();
        tokio::task::spawn_blocking(move || {
            bench_infer(&self.batch, self.iters, self.init.init(), backend, &self.device)
        })
        .await?
    }
}

fn bench_infer(
    batches: &[usize],
    iters: usize,
    init: WeightInit,
    backend: Backend,
    device: &str,
) -> anyhow::Result<()> {
    let trainer = trainer(backend, device, init)?;
    let mut per_batch = serde_json::Map::new();
    for &size in batches {
        let batch = random_batch(size, 2);
        // Untimed warm-up.
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
    result["backend"] = backend.name().into();
    result["device"] = device.into();
    result["per_batch"] = per_batch.into();
    emit(result);
    Ok(())
}
