//! Streaming, sharded data against a real S3-compatible server: two workers train one epoch of
//! a dataset larger than their cache, each reading about half of it (counted by a proxy between
//! each worker and the store, not by the worker), with every sample trained once; from image
//! files (a request per image) and from shards written by `facectl dataset pack` (a few byte
//! ranges per step).
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use facetrain_tests::proxy::Proxy;
use facetrain_tests::s3::S3Server;
use facetrain_tests::{Sandbox, binary, scrape};
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

/// What one worker read, by its metrics and by its proxy.
struct WorkerRead {
    name: String,
    bytes: f64,
    requests: f64,
    served: f64,
}

/// Trains one epoch on two workers, each behind its own proxy to the store, with the dataset as
/// image files or packed; returns the dataset's image bytes and what each worker read.
fn stream_one_epoch_on_two_workers(packed: bool) -> (f64, Vec<WorkerRead>) {
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
    let (train, validate) = if packed {
        for split in ["train", "validate"] {
            let source = format!("s3://faces/big/{split}.csv");
            let out = format!("s3://faces/packed/{split}");
            let done = Command::new(binary("facectl"))
                .args(["dataset", "pack", &source, &out, "--image-size", "32", "--output", "json"])
                .envs(s3.env())
                .output()
                .unwrap();
            assert!(done.status.success(), "pack {split}: {}", String::from_utf8_lossy(&done.stderr));
            let summary: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
            assert_eq!(summary["rows"], if split == "train" { 300 } else { 100 }, "{summary}");
        }
        ("s3://faces/packed/train/index.csv", "s3://faces/packed/validate/index.csv")
    } else {
        ("s3://faces/big/train.csv", "s3://faces/big/validate.csv")
    };

    let proxies = [Proxy::start(&format!("127.0.0.1:{}", s3.port)), Proxy::start(&format!("127.0.0.1:{}", s3.port))];
    for (name, proxy) in ["a", "b"].into_iter().zip(&proxies) {
        sandbox.add_worker_with_env(name, &[("AWS_ENDPOINT_URL", &format!("http://{}", proxy.address()))]);
    }
    // One epoch (15 steps of 20), validated only at the end, no checkpoint: every read is a
    // sample this worker trains or scores.
    let job = sandbox.dir.path().join("stream.toml");
    std::fs::write(
        &job,
        format!(
            "name = \"stream\"\n[dataset]\ntrain = \"{train}\"\nvalidate = \"{validate}\"\ncache_mb = 1\n\
             [model]\nimage_size = 32\nconv_channels = [8, 16]\nfc_units = [32]\n\
             [training]\nbatch_size = 20\nlearning_rate = 0.001\nmax_steps = 15\neval_every = 0\nseed = 3\n\
             [workers]\ncount = 2\n"
        ),
    )
    .unwrap();
    let id = sandbox.submit(&job);
    let done = sandbox.wait_for_state(&id, Duration::from_secs(180), "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["ledger"]["positions_trained"], 300, "every position of the epoch trained: {done}");
    assert_eq!(done["ledger"]["epochs_checked"], 1, "every row trained exactly once in the epoch: {done}");
    assert!(done["val_accuracy"].as_f64().is_some(), "validated from the shares: {done}");

    let total = total as f64;
    let mut reads = Vec::new();
    for ((name, address), proxy) in sandbox.worker_metrics.iter().zip(&proxies) {
        let metrics = scrape(address);
        let read = WorkerRead {
            name: name.clone(),
            bytes: series(&metrics, "facetrain_data_read_bytes_total", &id),
            requests: series(&metrics, "facetrain_data_read_requests_total", &id),
            served: proxy.served() as f64,
        };
        let share = read.bytes / total;
        assert!((0.4..=0.6).contains(&share), "worker {name} read {} of {total} image bytes ({share:.2})", read.bytes);
        // The proxy saw the responses (headers and the CSVs included): more than the images the
        // worker counted, and far from the whole dataset that a worker reading everything needs.
        assert!(
            read.served >= read.bytes && read.served < 0.75 * total,
            "worker {name}: {} bytes through its proxy",
            read.served
        );
        let cache = series(&metrics, "facetrain_data_cache_bytes", &id);
        assert!(cache > 0.0 && cache <= (1 << 20) as f64, "worker {name} holds {cache} bytes of images");
        reads.push(read);
    }
    (total, reads)
}

#[test]
fn two_workers_stream_a_dataset_larger_than_their_cache_each_reading_half() {
    let (_, reads) = stream_one_epoch_on_two_workers(false);
    for read in reads {
        // Its 150 training and 50 validation images, an object each.
        assert!(read.requests >= 200.0, "worker {}: {} requests", read.name, read.requests);
    }
}

#[test]
fn packed_data_streams_the_same_epoch_in_a_few_ranges_per_step() {
    let (_, reads) = stream_one_epoch_on_two_workers(true);
    for read in reads {
        // A share of 10 is one or two runs of 10 packed rows: at most 2 ranges a step, 30 for the
        // epoch, and the validation share of 50 consecutive rows in a few; against 200 as files.
        assert!(read.requests <= 40.0, "worker {}: {} requests", read.name, read.requests);
    }
}
