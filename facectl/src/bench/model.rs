//! The model the `step` and `infer` benchmarks run: the tutorial's CNN with the default model
//! settings and 5 classes, on random batches of 96 px images, so the figures compare with the
//! reference's.

use facetrain_worker::backend::training_device;
use facetrain_worker::data::batch::Batch;
use facetrain_worker::data::shard::Pick;
use facetrain_worker::job::{Backend, ModelSpec, TrainingSpec, WeightInit};
use facetrain_worker::model::Architecture;
use facetrain_worker::train::trainer::{ADAM_EPSILON, Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The image side and class count of every benchmark batch.
pub const SIDE: usize = 96;
const CLASSES: usize = 5;

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InitArg {
    TruncatedNormal,
    HeNormal,
}

impl InitArg {
    pub fn init(self) -> WeightInit {
        match self {
            Self::TruncatedNormal => WeightInit::TruncatedNormal,
            Self::HeNormal => WeightInit::HeNormal,
        }
    }
}

/// `len` random images and labels, the same for the same `seed`.
pub fn random_batch(len: usize, seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Batch {
        images: (0..len * 3 * SIDE * SIDE).map(|_| rng.random::<f32>()).collect(),
        labels: (0..len).map(|_| rng.random_range(0..CLASSES)).collect(),
        picks: (0..len).map(|i| Pick { position: i as u64, epoch: 0, row: i }).collect(),
        skipped: Vec::new(),
        side: SIDE,
    }
}

pub fn trainer(backend: Backend, device: &str, init: WeightInit) -> anyhow::Result<Trainer> {
    let arch = Architecture::new(ModelSpec { init, ..ModelSpec::default() }, CLASSES);
    Ok(Trainer::new(arch, &TrainingSpec::default(), training_device(backend, device)?))
}

/// What a model benchmark ran, in the reference's terms (its RESULT lines carry the same keys).
pub fn model_settings(init: WeightInit) -> serde_json::Value {
    serde_json::json!({"init": init, "adam_epsilon": adam_epsilon()})
}

/// [`ADAM_EPSILON`] as the decimal it was written as (1e-8, not the f32's 9.99999993922529e-9).
pub fn adam_epsilon() -> f64 {
    // An f32 always prints as a decimal number; the widened f32 is the fallback all the same.
    ADAM_EPSILON.to_string().parse().unwrap_or(f64::from(ADAM_EPSILON))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_epsilon_is_reported_as_written() {
        assert_eq!(adam_epsilon().to_string(), ADAM_EPSILON.to_string());
    }
}

/// `--backend` of the bench commands.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    Flex,
    Tch,
    Cuda,
}

impl BackendArg {
    pub fn backend(self) -> Backend {
        match self {
            Self::Flex => Backend::Flex,
            Self::Tch => Backend::Tch,
            Self::Cuda => Backend::Cuda,
        }
    }
}
