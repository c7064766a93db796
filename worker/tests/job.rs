//! job.toml errors name the key and the expected form.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use facetrain_worker::job::JobSpec;

const MINIMAL: &str = "name = \"j\"\n[dataset]\ntrain = \"t.csv\"\nvalidate = \"v.csv\"\n";

fn error(extra: &str) -> String {
    JobSpec::parse(&format!("{MINIMAL}{extra}"), "job.toml").unwrap_err().to_string()
}

#[test]
fn defaults_are_the_tutorial() {
    let job = JobSpec::parse(MINIMAL, "job.toml").unwrap();
    assert_eq!(job.model.conv_channels, vec![16, 32, 64, 128]);
    assert_eq!(job.model.fc_units, vec![512, 1024]);
    assert_eq!((job.model.image_size, job.model.kernel_size, job.model.keep_prob), (96, 3, 0.7));
    assert_eq!((job.training.batch_size, job.training.learning_rate), (100, 1e-4));
    assert!(job.augment.flip && job.augment.hue && job.augment.saturation);
}

#[test]
fn unknown_keys_are_named() {
    let err = error("[training]\nbatchsize = 10\n");
    assert!(err.contains("job.toml") && err.contains("batchsize") && err.contains("batch_size"), "{err}");
    let err = error("[trainning]\n");
    assert!(err.contains("trainning"), "{err}");
}

#[test]
fn wrong_types_and_values_name_the_key_and_the_expectation() {
    let err = error("[training]\nbatch_size = \"big\"\n");
    assert!(err.contains("batch_size") && err.contains("job.toml"), "{err}");
    let err = error("[training]\nlearning_rate = -1.0\n");
    assert!(err.contains("`training.learning_rate`") && err.contains("positive number"), "{err}");
    let err = error("[model]\nkeep_prob = 0.0\n");
    assert!(err.contains("`model.keep_prob`"), "{err}");
    let err = error("[workers]\ndevice = \"gpu\"\n");
    assert!(err.contains("`workers.device`") && err.contains("cuda:N"), "{err}");
    let err = error("[dataset.extra]\n");
    assert!(err.contains("extra"), "{err}");
}

#[test]
fn a_job_round_trips_through_toml() {
    let job = JobSpec::parse(MINIMAL, "job.toml").unwrap();
    assert_eq!(JobSpec::parse(&job.to_toml(), "again").unwrap(), job);
}
