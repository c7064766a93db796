//! Loading datasets from real files: every kind of bad input is refused with the file, the line
//! and the problem, or skipped and counted when the job says so.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use facetrain_worker::data::dataset::{LoadOptions, load_dataset};
use facetrain_worker::job::OnBadRow;

fn options(on_bad_row: OnBadRow) -> LoadOptions {
    LoadOptions { side: common::SMALL_SIDE, num_classes: None, on_bad_row, allow_outside_paths: false }
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
    assert_eq!(dataset.resized, 0);
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
    assert_eq!(dataset.len(), 10);
    assert_eq!(dataset.skipped.iter().map(|e| e.line).collect::<Vec<_>>(), vec![11, 12]);
}

#[tokio::test]
async fn images_of_another_size_are_resized_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    common::synth_dataset(dir.path(), 40, 1);
    let dataset = load_dataset(dir.path().join("train.csv").to_str().unwrap(), &options(OnBadRow::Fail)).await.unwrap();
    assert_eq!(dataset.resized, 5);
    assert_eq!(dataset.images[0].pixels.len(), common::SMALL_SIDE * common::SMALL_SIDE * 3);
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
