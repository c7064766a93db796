//! Streaming, sharded data against a real S3-compatible server: two workers train one epoch of
//! a dataset larger than their cache, each reading about half of it (counted by a proxy between
//! each worker and the store, not by the worker), with every sample trained once.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use facetrain_tests::proxy::Proxy;
use facetrain_tests::s3::S3Server;
use facetrain_tests::{Sandbox, scrape};
use facetrain_worker::data::synth::{SynthOptions, write_synthetic_dataset};

/// The value of the series `name{job_id="<job>"}` in a scrape.
fn series(scrape: &str, name: &str, job: &str) -> f64 {
    let prefix = format!("{name}{{job_id=\"{job}\"}} ");
    let line = scrape.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {prefix} in:\n{scrape}"));
    line[prefix.len()..].trim().parse().unwrap()
}

fn image_bytes(dir: &std::path::Path, split: &str) -> u64 {
    let csv = std::fs::read_to_string(dir.join(format!("{split}.csv"))).unwrap();
    csv.lines().map(|line| std::fs::metadata(dir.join(line.split(',').next().unwrap())).unwrap().len()).sum()
}

#[test]
fn two_workers_stream_a_dataset_larger_than_their_cache_each_reading_half() {
    let s3 = S3Server::start();
    let mut sandbox = Sandbox::start();
    sandbox.env = s3.env();
    // 300 training and 100 validation faces, 96x96 JPEGs, decoded at 32x32 for the model:
    // 1.25 MiB decoded, against a cache of 1 MiB.
    let data = sandbox.dir.path().join("data");
    let options = SynthOptions { side: 96, train_per_person: 60, validate_per_person: 20, seed: 5 };
    write_synthetic_dataset(&data, &options).unwrap();
    let total = image_bytes(&data, "train") + image_bytes(&data, "validate");
    s3.create_bucket("faces");
    s3.upload_dir(&data, "faces", "big");

    let proxies = [Proxy::start(&format!("127.0.0.1:{}", s3.port)), Proxy::start(&format!("127.0.0.1:{}", s3.port))];
    for (name, proxy) in ["a", "b"].into_iter().zip(&proxies) {
        sandbox.add_worker_with_env(name, &[("AWS_ENDPOINT_URL", &format!("http://{}", proxy.address()))]);
    }
    // One epoch (15 steps of 20), validated only at the end, no checkpoint: every read is a
    // sample this worker trains or scores.
    let job = sandbox.dir.path().join("stream.toml");
    std::fs::write(
        &job,
        "name = \"stream\"\n[dataset]\ntrain = \"s3://faces/big/train.csv\"\nvalidate = \"s3://faces/big/validate.csv\"\n\
         cache_mb = 1\n[model]\nimage_size = 32\nconv_channels = [8, 16]\nfc_units = [32]\n\
         [training]\nbatch_size = 20\nlearning_rate = 0.001\nmax_steps = 15\neval_every = 0\nseed = 3\n\
         [workers]\ncount = 2\n",
    )
    .unwrap();
    let id = sandbox.submit(&job);
    let done = sandbox.wait_for_state(&id, Duration::from_secs(180), "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["ledger"]["positions_trained"], 300, "every position of the epoch trained: {done}");
    assert_eq!(done["ledger"]["epochs_checked"], 1, "every row trained exactly once in the epoch: {done}");
    assert!(done["val_accuracy"].as_f64().is_some(), "validated from the shares: {done}");

    for ((name, address), proxy) in sandbox.worker_metrics.iter().zip(&proxies) {
        let metrics = scrape(address);
        let read = series(&metrics, "facetrain_data_read_bytes_total", &id);
        let share = read / total as f64;
        assert!((0.4..=0.6).contains(&share), "worker {name} read {read} of {total} image bytes ({share:.2})");
        // The proxy saw the responses (headers and the CSVs included): more than the images the
        // worker counted, and far from the whole dataset that a worker reading everything needs.
        let served = proxy.served() as f64;
        assert!(served >= read && served < 0.75 * total as f64, "worker {name}: {served} bytes through its proxy");
        let cache = series(&metrics, "facetrain_data_cache_bytes", &id);
        assert!(cache > 0.0 && cache <= (1 << 20) as f64, "worker {name} holds {cache} bytes of images");
    }
}
