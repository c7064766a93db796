//! Shared fixtures for the worker's tests: small generated datasets and a tiny architecture so
//! the training tests run in seconds on two cores.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use facetrain_worker::data::synth::{SynthOptions, write_synthetic_dataset};
use facetrain_worker::job::{AugmentSpec, JobSpec};

pub const SMALL_SIDE: usize = 32;

pub fn synth_dataset(dir: &Path, side: usize, per_person: usize) -> PathBuf {
    let options = SynthOptions { side: side as u32, train_per_person: per_person, validate_per_person: 4, seed: 3 };
    write_synthetic_dataset(dir, &options).unwrap();
    dir.to_path_buf()
}

/// A job on `data` with a small model (32x32 input, two conv layers, one FC layer).
pub fn small_job(data: &Path, checkpoint_dir: Option<&Path>) -> JobSpec {
    let text = format!(
        r#"
name = "small"
[dataset]
train = "{train}"
validate = "{validate}"
[model]
image_size = {SMALL_SIDE}
conv_channels = [8, 16]
fc_units = [32]
keep_prob = 0.7
[training]
batch_size = 20
max_steps = 20
eval_every = 0
seed = 5
[checkpoint]
dir = "{checkpoint}"
every = 10
keep = 5
"#,
        train = data.join("train.csv").display(),
        validate = data.join("validate.csv").display(),
        checkpoint = checkpoint_dir.map(|p| p.display().to_string()).unwrap_or_default(),
    );
    JobSpec::parse(&text, "test job").unwrap()
}

pub fn no_augment(mut job: JobSpec) -> JobSpec {
    job.augment = AugmentSpec::none();
    job
}

/// The real faces in `../shared/data/lfw5`, when present.
pub fn lfw5() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/lfw5");
    path.join("train.csv").exists().then(|| path.canonicalize().unwrap())
}
