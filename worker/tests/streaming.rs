//! Datasets larger than the cache: images read as they are needed, kept while the budget has
//! room, bad ones met (and named by CSV line) when read, validation split into shares that sum
//! to the whole set, and a local run that streams end to end with every sample once.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use facetrain_worker::backend::training_device;
use facetrain_worker::data::batch::build_batch;
use facetrain_worker::data::cache::{CacheBudget, decoded_bytes};
use facetrain_worker::data::dataset::{LoadOptions, Sample, open_dataset};
use facetrain_worker::data::shard::ShardPlan;
use facetrain_worker::job::{Backend, OnBadRow};
use facetrain_worker::model::Architecture;
use facetrain_worker::train::evaluate::{evaluate, evaluate_share};
use facetrain_worker::train::run::{Silent, load_job_datasets, run_local};
use facetrain_worker::train::trainer::Trainer;

fn options(on_bad_row: OnBadRow, cache_images: u64) -> LoadOptions {
    LoadOptions {
        side: common::SMALL_SIDE,
        num_classes: None,
        on_bad_row,
        allow_outside_paths: false,
        cache: CacheBudget::new(cache_images * decoded_bytes(common::SMALL_SIDE)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_reads_no_image_and_the_cache_keeps_what_its_budget_holds() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), common::SMALL_SIDE, 4);
    let csv = dir.path().join("train.csv");
    let dataset = open_dataset(csv.to_str().unwrap(), &options(OnBadRow::Fail, 5)).await.unwrap();
    assert_eq!((dataset.len(), dataset.read_counts().requests()), (20, 0), "opening reads the CSV only");

    let rows: Vec<usize> = (0..10).collect();
    assert!(dataset.samples(&rows).await.unwrap().iter().all(|s| matches!(s, Sample::Image(_))));
    assert_eq!(dataset.read_counts().requests(), 10);
    assert_eq!(dataset.cached(), 5, "the budget holds five images");
    assert_eq!(dataset.cache_bytes(), 5 * decoded_bytes(common::SMALL_SIDE));
    // Read again: the five kept are hits, the other five are read again.
    dataset.samples(&rows).await.unwrap();
    assert_eq!(dataset.read_counts().requests(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_image_is_met_when_read_named_by_its_line_or_skipped_once() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), common::SMALL_SIDE, 2);
    let csv = dir.path().join("train.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("train/nobody/missing.jpg,Ada_Lovelace,0\n");
    std::fs::write(&csv, text).unwrap();

    let failing = open_dataset(csv.to_str().unwrap(), &options(OnBadRow::Fail, 100)).await.unwrap();
    assert!(failing.samples(&[0, 1]).await.is_ok(), "good rows read before the bad one is needed");
    let err = failing.samples(&[3, 10]).await.unwrap_err().to_string();
    assert!(err.contains("train.csv:11:") && err.contains("missing.jpg") && err.contains("not found"), "{err}");

    let skipping = open_dataset(csv.to_str().unwrap(), &options(OnBadRow::Skip, 100)).await.unwrap();
    let samples = skipping.samples(&[10, 0]).await.unwrap();
    assert!(matches!(samples[0], Sample::Bad) && matches!(samples[1], Sample::Image(_)));
    let objects = skipping.read_counts().requests();
    assert!(matches!(skipping.samples(&[10]).await.unwrap()[0], Sample::Bad));
    assert_eq!(skipping.read_counts().requests(), objects, "a bad image is not read again");
    assert_eq!(skipping.bad_images().iter().map(|e| e.line).collect::<Vec<_>>(), vec![11]);
    // Its batch trains on the rest and still accounts for it.
    let picks = ShardPlan::new(skipping.len(), 1).picks(0, skipping.len());
    let batch = build_batch(&skipping, picks, None).unwrap();
    assert_eq!((batch.len(), batch.skipped.len(), batch.consumed().count()), (10, 1, 11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_shares_sum_to_the_whole_sets_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth_dataset(dir.path(), common::SMALL_SIDE, 6);
    let job = common::small_job(&data, None);
    let (train, validate) = load_job_datasets(&job).await.unwrap();
    let device = training_device(Backend::Flex, "cpu").unwrap();
    let mut trainer = Trainer::new(Architecture::new(job.model.clone(), train.num_classes), &job.training, device);
    let mut plan = ShardPlan::new(train.len(), 1);
    for step in 0..6 {
        let batch = build_batch(&train, plan.picks(step * 20, 20), Some((&job.augment, 1))).unwrap();
        trainer.train_step(&batch, 20, None).unwrap();
    }
    let whole = evaluate(&trainer, &validate).unwrap();
    assert_eq!(whole.samples, validate.len());
    for world in 1..=4 {
        let shares: Vec<_> = (0..world).map(|rank| evaluate_share(&trainer, &validate, rank, world).unwrap()).collect();
        let samples: usize = shares.iter().map(|e| e.samples).sum();
        let correct: usize = shares.iter().map(|e| e.correct()).sum();
        assert_eq!((samples, correct), (whole.samples, whole.correct()), "{world} shares");
        let mut confusion = vec![vec![0; train.num_classes]; train.num_classes];
        for share in &shares {
            for (sum, row) in confusion.iter_mut().zip(&share.confusion) {
                sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
        }
        assert_eq!(confusion, whole.confusion, "{world} shares");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_run_streams_a_dataset_larger_than_its_cache_with_every_sample_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth_dataset(dir.path(), common::SMALL_SIDE, 8);
    let mut job = common::small_job(&data, None);
    // 40 training rows, batch 20: 20 steps are 10 epochs; nothing is cached.
    job.dataset.cache_mb = 0;
    let summary = run_local(job, Arc::new(Silent), Arc::new(AtomicBool::new(false))).await.unwrap();
    assert_eq!(summary.steps, 20);
    assert_eq!((summary.ledger.positions_trained, summary.ledger.epochs_checked), (400, 10));
}

/// `data`'s train.csv packed by hand as `facectl dataset pack` lays it out (one shard of
/// `shard_bytes` or more): returns the index and, for each packed row, the plain row it holds.
fn pack(data: &std::path::Path, shard_bytes: usize) -> (std::path::PathBuf, Vec<usize>) {
    use facetrain_worker::data::pack::{INDEX_HEADER, Packer, pack_order, shard_name};
    let csv = std::fs::read_to_string(data.join("train.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let out = data.join("packed");
    std::fs::create_dir_all(&out).unwrap();
    let mut index = vec![INDEX_HEADER.join(",")];
    let mut packer = Packer::new(shard_bytes);
    let mut shards = Vec::new();
    let order = pack_order(rows.len(), 11);
    for &row in &order {
        let image = std::fs::read(data.join(rows[row][0])).unwrap();
        let (place, full) = packer.add(&image);
        index.push(format!(
            "{},{},{},{},{}",
            shard_name(place.shard),
            place.offset,
            image.len(),
            rows[row][1],
            rows[row][2]
        ));
        shards.extend(full);
    }
    shards.extend(packer.finish());
    for (shard, bytes) in shards {
        std::fs::write(out.join(shard_name(shard)), bytes).unwrap();
    }
    std::fs::write(out.join("index.csv"), index.join("\n") + "\n").unwrap();
    (out.join("index.csv"), order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_data_reads_a_share_of_a_step_in_a_few_ranges_with_the_same_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth_dataset(dir.path(), common::SMALL_SIDE, 40);
    let (index, order) = pack(&data, 1 << 30);
    let plain = open_dataset(data.join("train.csv").to_str().unwrap(), &options(OnBadRow::Fail, 0)).await.unwrap();
    let packed = open_dataset(index.to_str().unwrap(), &options(OnBadRow::Fail, 0)).await.unwrap();
    assert!(packed.is_packed() && !plain.is_packed());
    assert_eq!((packed.len(), packed.num_classes), (plain.len(), plain.num_classes));

    // A step of 100 over 2 workers: each share of 50 is a few runs of consecutive packed rows,
    // so a few reads (a run is 10 rows; a share can meet 6 runs, fewer reads where two of them lie
    // side by side in the shard), where plain data takes 50.
    let mut plan = packed.plan(5);
    for rank in 0..2 {
        let picks = &plan.picks(0, 100)[facetrain_worker::data::shard::share(100, rank, 2)];
        let rows: Vec<usize> = picks.iter().map(|p| p.row).collect();
        let before = packed.read_counts().requests();
        let samples = packed.samples(&rows).await.unwrap();
        let requests = packed.read_counts().requests() - before;
        assert!((1..=6).contains(&requests), "rank {rank}: {requests} reads for 50 packed images");
        let originals = plain.samples(&rows.iter().map(|&r| order[r]).collect::<Vec<_>>()).await.unwrap();
        for (row, (a, b)) in rows.iter().zip(samples.iter().zip(&originals)) {
            let (Sample::Image(a), Sample::Image(b)) = (a, b) else { panic!("row {row} unread") };
            assert_eq!(a.pixels, b.pixels, "packed row {row} holds plain row {}", order[*row]);
            assert_eq!(packed.label(*row), plain.label(order[*row]));
        }
    }
    assert_eq!(plain.read_counts().requests(), 100);
    assert_eq!(packed.read_counts().bytes(), plain.read_counts().bytes(), "the same image bytes, fewer requests");

    // A shard cut short: the rows past its end are bad rows, named by their index line.
    let shard = index.with_file_name("shard-00000.pack");
    let length = std::fs::metadata(&shard).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&shard).unwrap().set_len(length - 10).unwrap();
    let last = packed.len() - 1;
    let cut = open_dataset(index.to_str().unwrap(), &options(OnBadRow::Fail, 0)).await.unwrap();
    let err = cut.samples(&[last]).await.unwrap_err().to_string();
    let line = last + 2; // the header, and lines count from 1
    assert!(err.contains(&format!("index.csv:{line}:")) && err.contains("past the end"), "{err}");
    assert!(cut.samples(&[0]).await.is_ok(), "rows before the cut read as before");
}
