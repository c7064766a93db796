//! Loading datasets from real files: every kind of bad input is refused with the file, the line
//! and the problem, or skipped and counted when the job says so.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use facetrain_worker::data::cache::CacheBudget;
use facetrain_worker::data::dataset::{LoadOptions, Sample, load_dataset};
use facetrain_worker::job::OnBadRow;

fn options(on_bad_row: OnBadRow) -> LoadOptions {
    LoadOptions {
        side: common::SMALL_SIDE,
        num_classes: None,
        on_bad_row,
        allow_outside_paths: false,
        cache: CacheBudget::unlimited(),
    }
}

fn append(csv: &Path, line: &str) {
    let mut text = std::fs::read_to_string(csv).unwrap();
    text.push_str(line);
    text.push('\n');
    std::fs::write(csv, text).unwrap();
}

async fn load_error(csv: &Path) -> String {
    load_dataset(csv.to_str().unwrap(), &options(OnBadRow::Fail)).await.unwrap_err().to_string()
}

#[tokio::test]
async fn a_good_dataset_loads_with_classes_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), common::SMALL_SIDE, 3);
    let dataset = load_dataset(dir.path().join("train.csv").to_str().unwrap(), &options(OnBadRow::Fail)).await.unwrap();
    assert_eq!(dataset.len(), 15);
    assert_eq!(dataset.num_classes, 5);
    assert_eq!(dataset.count_per_class(), vec![3; 5]);
    assert_eq!(dataset.class_names[1], "Alan_Turing");
    assert_eq!(dataset.read_counts().resized(), 0);
}

#[tokio::test]
async fn missing_corrupt_and_escaping_images_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), common::SMALL_SIDE, 2);
    let csv = dir.path().join("train.csv");
    append(&csv, "train/nobody/missing.jpg,Ada_Lovelace,0");
    let err = load_error(&csv).await;
    assert!(err.contains("train.csv:11:") && err.contains("missing.jpg") && err.contains("not found"), "{err}");

    let csv = dir.path().join("validate.csv");
    std::fs::write(dir.path().join("corrupt.jpg"), b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
    append(&csv, "corrupt.jpg,Ada_Lovelace,0");
    let err = load_error(&csv).await;
    assert!(err.contains("validate.csv:21:") && err.contains("corrupt.jpg") && err.contains("undecodable"), "{err}");

    let outside = tempfile::tempdir().unwrap();
    common::synth_dataset(outside.path(), common::SMALL_SIDE, 1);
    let csv = outside.path().join("train.csv");
    append(&csv, "../escape.jpg,Ada_Lovelace,0");
    let err = load_error(&csv).await;
    assert!(err.contains("train.csv:6:") && err.contains("escapes the dataset folder"), "{err}");
}

#[tokio::test]
async fn skip_mode_drops_bad_rows_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), common::SMALL_SIDE, 2);
    let csv = dir.path().join("train.csv");
    append(&csv, "train/nobody/missing.jpg,Ada_Lovelace,0");
    append(&csv, "only,two");
    let dataset = load_dataset(csv.to_str().unwrap(), &options(OnBadRow::Skip)).await.unwrap();
    // The row whose image is missing stays in the plan (it is skipped wherever it comes up).
    assert_eq!((dataset.len(), dataset.usable()), (11, 10));
    assert_eq!(dataset.count_per_class().iter().sum::<usize>(), 10);
    assert_eq!(dataset.skipped.iter().map(|e| e.line).collect::<Vec<_>>(), vec![11, 12]);
}

#[tokio::test]
async fn images_of_another_size_are_resized_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), 40, 1);
    let dataset = load_dataset(dir.path().join("train.csv").to_str().unwrap(), &options(OnBadRow::Fail)).await.unwrap();
    assert_eq!(dataset.read_counts().resized(), 5);
    let Sample::Image(image) = &dataset.samples(&[0]).await.unwrap()[0] else { panic!("row 0 is a good image") };
    assert_eq!(image.pixels.len(), common::SMALL_SIDE * common::SMALL_SIDE * 3);
}

#[tokio::test]
async fn an_unreadable_csv_names_the_location() {
    let err = load_dataset("/nonexistent/facetrain/train.csv", &options(OnBadRow::Fail)).await.unwrap_err().to_string();
    assert!(err.contains("/nonexistent/facetrain/train.csv") && err.contains("not found"), "{err}");
}

/// The real lfw5 faces: `$FACETRAIN_LFW5_DIR` (relative paths from `worker/`), or
/// `../shared/data/lfw5` beside the repository.
/// Missing data fails the test, since passing without reading a face would check nothing;
/// `FACETRAIN_SKIP_LFW5=1` skips it instead, with a SKIPPED line (and one in `make test`'s
/// summary, through `FACETRAIN_SKIP_LOG`).
fn lfw5_or_skip(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("FACETRAIN_LFW5_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/lfw5"),
    };
    if dir.join("train.csv").is_file() {
        return Some(dir);
    }
    let missing = format!("no lfw5 dataset at {} (no train.csv there)", dir.display());
    if std::env::var("FACETRAIN_SKIP_LFW5").as_deref() != Ok("1") {
        panic!(
            "{missing}. The tests expect the shared data beside the repository (../shared/data/lfw5); \
             point FACETRAIN_LFW5_DIR at a copy, or set FACETRAIN_SKIP_LFW5=1 to skip this test"
        );
    }
    let line = format!("worker/tests/dataset.rs {test}: {missing}; FACETRAIN_SKIP_LFW5=1");
    eprintln!("SKIPPED: {line}");
    if let Some(log) = std::env::var_os("FACETRAIN_SKIP_LOG") {
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open FACETRAIN_SKIP_LOG");
        writeln!(file, "{line}").expect("write FACETRAIN_SKIP_LOG");
    }
    None
}

#[tokio::test]
async fn the_real_lfw5_faces_load() {
    let Some(lfw5) = lfw5_or_skip("the_real_lfw5_faces_load") else { return };
    let options = LoadOptions { side: 96, ..options(OnBadRow::Fail) };
    let train = load_dataset(lfw5.join("train.csv").to_str().unwrap(), &options).await.unwrap();
    assert_eq!((train.len(), train.num_classes), (200, 5));
    assert_eq!(train.count_per_class(), vec![40; 5]);
}

#[tokio::test]
async fn a_line_that_is_not_utf8_is_reported_by_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), common::SMALL_SIDE, 1);
    let csv = dir.path().join("train.csv");
    let mut bytes = std::fs::read(&csv).unwrap();
    bytes.extend_from_slice(b"train/x/Bj\xf6rn.jpg,Bj\xf6rn,5\n");
    std::fs::write(&csv, bytes).unwrap();
    let err = load_error(&csv).await;
    assert!(err.ends_with("train.csv:6: not UTF-8 text (byte 11 of the line): save the CSV as UTF-8"), "{err}");
}

#[tokio::test]
async fn a_byte_order_mark_does_not_end_up_in_the_first_path() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), common::SMALL_SIDE, 1);
    let csv = dir.path().join("train.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, format!("\u{feff}{text}")).unwrap();
    let dataset = load_dataset(csv.to_str().unwrap(), &options(OnBadRow::Fail)).await.unwrap();
    assert_eq!(dataset.len(), 5);
    assert!(dataset.rows[0].path.starts_with("train/"), "{:?}", dataset.rows[0].path);
}

#[tokio::test]
async fn a_path_above_the_root_is_named_as_written() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), common::SMALL_SIDE, 1);
    let csv = dir.path().join("train.csv");
    let climb = "../".repeat(40) + "x.jpg";
    append(&csv, &format!("{climb},Ada_Lovelace,0"));
    let options = LoadOptions { allow_outside_paths: true, ..options(OnBadRow::Fail) };
    let err = load_dataset(csv.to_str().unwrap(), &options).await.unwrap_err().to_string();
    let expected = format!(
        "train.csv:6: image `{climb}`: it climbs above the root of the store (/) from {}",
        dir.path().display()
    );
    assert!(err.ends_with(&expected), "{err}\nexpected the end: {expected}");
}

#[tokio::test]
async fn a_symlink_that_leaves_the_dataset_folder_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    common::synth_dataset(outside.path(), common::SMALL_SIDE, 1);
    let secret = outside.path().join("train/Ada_Lovelace/Ada_Lovelace_0000.jpg");
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), common::SMALL_SIDE, 1);
    std::os::unix::fs::symlink(&secret, dir.path().join("train/innocent.jpg")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("train"), dir.path().join("train/linked")).unwrap();
    let csv = dir.path().join("train.csv");
    let clean = std::fs::read_to_string(&csv).unwrap();

    append(&csv, "train/innocent.jpg,Ada_Lovelace,0");
    let err = load_error(&csv).await;
    assert!(
        err.contains("train.csv:6: image `train/innocent.jpg`") && err.contains("escapes the dataset folder"),
        "{err}"
    );
    assert!(err.contains(&format!("a link to {}", secret.canonicalize().unwrap().display())), "{err}");

    std::fs::write(&csv, &clean).unwrap();
    append(&csv, "train/linked/Ada_Lovelace/Ada_Lovelace_0000.jpg,Ada_Lovelace,0");
    assert!(load_error(&csv).await.contains("escapes the dataset folder"));

    // Links inside the folder, and a dataset reached through a linked folder, are fine.
    std::fs::write(&csv, &clean).unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("train/Ada_Lovelace/Ada_Lovelace_0000.jpg"),
        dir.path().join("train/ada.jpg"),
    )
    .unwrap();
    append(&csv, "train/ada.jpg,Ada_Lovelace,0");
    let via = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(dir.path(), via.path().join("data")).unwrap();
    let linked_csv = via.path().join("data/train.csv");
    let dataset = load_dataset(linked_csv.to_str().unwrap(), &options(OnBadRow::Fail)).await.unwrap();
    assert_eq!(dataset.len(), 6);
    append(&csv, "train/nobody/missing.jpg,Ada_Lovelace,0");
    let err = load_error(&linked_csv).await;
    assert!(err.contains("missing.jpg") && err.contains("not found"), "{err}");
}

/// Peak resident memory of this process (Linux), to show a file was not read whole.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn a_huge_csv_stops_at_its_first_bad_line_in_bounded_memory() {
    const GIB: u64 = 1 << 30;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("train.csv");
    // A bad first line, then 1 GiB (sparse: no disk used) that is never needed.
    let file = std::fs::File::create(&csv).unwrap();
    std::io::Write::write_all(&mut &file, b"a.jpg,Ann,zero\n").unwrap();
    file.set_len(GIB).unwrap();
    let err = load_error(&csv).await;
    assert!(err.ends_with("train.csv:1: label `zero` is not a non-negative integer"), "{err}");

    // One endless line: refused at the line-length bound.
    std::fs::write(&csv, b"").unwrap();
    std::fs::File::options().write(true).open(&csv).unwrap().set_len(GIB).unwrap();
    let err = load_error(&csv).await;
    assert!(err.ends_with("train.csv:1: line longer than 4096 bytes"), "{err}");
    // Skip mode reads past it, keeping none of it (64 MiB keeps the test quick).
    std::fs::File::options().write(true).open(&csv).unwrap().set_len(GIB / 16).unwrap();
    let err = load_dataset(csv.to_str().unwrap(), &options(OnBadRow::Skip)).await.unwrap_err().to_string();
    assert!(err.contains("every row was bad"), "{err}");
    assert!(peak_rss_bytes() < GIB / 4, "peak RSS {} MiB: the CSV was held whole", peak_rss_bytes() >> 20);
}

#[tokio::test]
async fn labels_without_rows_are_found() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), common::SMALL_SIDE, 1);
    let csv = dir.path().join("train.csv");
    let text = std::fs::read_to_string(&csv).unwrap().replace(",Grace_Hopper,2", ",Grace_Hopper,7");
    std::fs::write(&csv, text).unwrap();
    let dataset = load_dataset(csv.to_str().unwrap(), &options(OnBadRow::Fail)).await.unwrap();
    assert_eq!(dataset.num_classes, 8);
    assert_eq!(dataset.labels_without_rows(), vec![2, 5, 6]);
}
