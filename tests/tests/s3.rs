//! Datasets and checkpoints in S3, against a real S3-compatible server on loopback.

use std::time::Duration;

use facetrain_tests::s3::S3Server;
use facetrain_tests::{Sandbox, binary, small_dataset};

fn job_text(name: &str, data: &str, checkpoints: &str, workers: usize, max_steps: u64) -> String {
    format!(
        "name = \"{name}\"\n[dataset]\ntrain = \"{data}/train.csv\"\nvalidate = \"{data}/validate.csv\"\n\
         [model]\nimage_size = 32\nconv_channels = [8, 16]\nfc_units = [32]\n\
         [training]\nbatch_size = 20\nlearning_rate = 0.001\nmax_steps = {max_steps}\neval_every = 5\nseed = 3\n\
         [workers]\ncount = {workers}\n[checkpoint]\ndir = \"{checkpoints}\"\nevery = 5\nkeep = 2\n"
    )
}

#[test]
fn local_training_reads_the_dataset_from_s3_and_writes_checkpoints_there() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    s3.create_bucket("faces");
    s3.upload_dir(&data, "faces", "sets/small");

    let check = std::process::Command::new(binary("facectl"))
        .args(["dataset", "check", "s3://faces/sets/small/train.csv", "--image-size", "32", "--output", "json"])
        .envs(s3.env())
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let counts: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!((counts["rows"].as_u64(), counts["num_classes"].as_u64()), (Some(40), Some(5)));

    let job = dir.path().join("s3.toml");
    std::fs::write(&job, job_text("s3", "s3://faces/sets/small", "s3://faces/checkpoints/s3", 1, 10)).unwrap();
    let run = |max_steps: &str| {
        let output = std::process::Command::new(binary("facectl"))
            .args(["local", job.to_str().unwrap(), "--output", "json", "--max-steps", max_steps])
            .envs(s3.env())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let first = run("10");
    assert_eq!(first["checkpoint"], "s3://faces/checkpoints/s3/ckpt-0000000010.ftck");
    let resumed = run("15");
    assert_eq!((resumed["resumed_from_step"].as_u64(), resumed["steps"].as_u64()), (Some(10), Some(15)));

    let missing = std::process::Command::new(binary("facectl"))
        .args(["dataset", "check", "s3://faces/nothing/train.csv"])
        .envs(s3.env())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && stderr.contains("s3://faces/nothing/train.csv") && stderr.contains("not found"),
        "{stderr}"
    );
}

#[test]
fn distributed_workers_train_from_s3_and_checkpoint_to_it() {
    let s3 = S3Server::start();
    let mut sandbox = Sandbox::start();
    sandbox.env = s3.env();
    let data = small_dataset(sandbox.dir.path());
    s3.create_bucket("faces");
    s3.upload_dir(&data, "faces", "small");
    let job = sandbox.dir.path().join("dist.toml");
    std::fs::write(&job, job_text("dist", "s3://faces/small", "s3://faces/ckpt", 2, 12)).unwrap();
    sandbox.add_worker("a");
    sandbox.add_worker("b");
    let id = sandbox.submit(&job);
    let done = sandbox.wait_for_state(&id, Duration::from_secs(120), "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
    // A coordinator job writes into its own folder under checkpoint.dir.
    assert_eq!(done["latest_checkpoint"], format!("s3://faces/ckpt/{id}/ckpt-0000000012.ftck"));
}
