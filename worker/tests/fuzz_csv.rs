//! Dataset CSVs are user input: any bytes must parse to rows or to an error naming the file (and
//! the line, for a bad row), skip mode must account for every data line, and no image path may
//! leave the dataset folder unless the job allows it.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../fuzz/proptest_support.rs"]
mod fuzz_support;

use std::path::Path;

use facetrain_worker::Error;
use facetrain_worker::data::cache::CacheBudget;
use facetrain_worker::data::csv::{MAX_CLASSES, ParsedCsv, parse_rows};
use facetrain_worker::data::dataset::{LoadOptions, load_dataset};
use facetrain_worker::job::OnBadRow;
use facetrain_worker::storage::Location;
use proptest::prelude::*;

const FILE: &str = "data/set/train.csv";

/// Segments a hostile image path is built from.
const PATH_PARTS: [&str; 8] = ["..", ".", "", "a", "...", "%2e%2e", "..\\", "a.png"];

/// Parses in both modes and checks what every outcome must satisfy; returns the skip-mode parse.
fn parse_checked(text: &str) -> Result<Option<ParsedCsv>, TestCaseError> {
    let lines = text.lines().count();
    let fail = parse_rows(FILE, text, None, OnBadRow::Fail);
    let skip = parse_rows(FILE, text, None, OnBadRow::Skip);
    for outcome in [&fail, &skip] {
        match outcome {
            Ok(parsed) => {
                for row in &parsed.rows {
                    prop_assert!((1..=lines).contains(&row.line), "row on line {} of {lines}", row.line);
                    prop_assert!(!row.path.is_empty() && !row.name.is_empty() && row.label < MAX_CLASSES);
                }
            }
            Err(Error::BadRow { file, line, .. }) => {
                prop_assert_eq!(file, FILE);
                prop_assert!((1..=lines).contains(line), "error on line {line} of {lines}");
                let message = outcome.as_ref().unwrap_err().to_string();
                prop_assert!(message.starts_with(&format!("{FILE}:{line}: ")), "{message}");
            }
            Err(Error::BadDataset { file, .. }) => prop_assert_eq!(file, FILE),
            Err(other) => prop_assert!(false, "unexpected error kind: {other}"),
        }
    }
    // The line fail mode stops at is the first line skip mode drops.
    if let (Err(Error::BadRow { line, .. }), Ok(parsed)) = (&fail, &skip) {
        prop_assert_eq!(parsed.skipped.first().map(|e| e.line), Some(*line));
    }
    Ok(skip.ok())
}

/// Image paths, good and hostile.
fn path_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("train/ann/1.png".to_string()),
        Just("../secret.png".to_string()),
        Just("/etc/passwd".to_string()),
        Just("file:///etc/passwd".to_string()),
        Just("s3://other-bucket/x.png".to_string()),
        Just("a/../../x.png".to_string()),
        Just("%2e%2e/x.png".to_string()),
        Just("a\0b.png".to_string()),
        Just(String::new()),
        "[a-z./]{1,20}",
        "p[^\n]{4999}",
    ]
}

fn name_field() -> impl Strategy<Value = String> {
    prop_oneof![Just("Ann".to_string()), Just("Powell, Colin".to_string()), Just(String::new()), "[^\n]{0,12}"]
}

fn label_field() -> impl Strategy<Value = String> {
    prop_oneof![
        (0usize..4).prop_map(|n| n.to_string()),
        Just("-1".to_string()),
        Just(" 3 ".to_string()),
        Just("1e3".to_string()),
        Just("0x10".to_string()),
        Just("\u{0663}".to_string()),
        Just("1000000000000".to_string()),
        Just(usize::MAX.to_string()),
        Just("99999999999999999999999".to_string()),
        "[^\n]{0,6}",
    ]
}

/// Quotes a field the CSV way, or leaves it bare, or leaves a quote open.
fn render(field: &str, quoting: u8) -> String {
    match quoting {
        0 => field.to_string(),
        1 => format!("\"{}\"", field.replace('"', "\"\"")),
        _ => format!("\"{field}"),
    }
}

fn row() -> impl Strategy<Value = String> {
    (path_field(), name_field(), label_field(), proptest::collection::vec(0u8..3, 3), 0u8..4).prop_map(
        |(path, name, label, quoting, extra)| {
            let fields = [path, name, label].iter().zip(&quoting).map(|(f, &q)| render(f, q)).collect::<Vec<_>>();
            // A missing or extra field now and then. No field starts a line with `#` and every line
            // has a comma, so each one is a data line (not a comment or blank).
            match extra {
                0 => fields[..2].join(","),
                1 => format!("{},extra", fields.join(",")),
                _ => fields.join(","),
            }
        },
    )
}

proptest! {
    #![proptest_config(fuzz_support::config(256))]

    #[test]
    fn arbitrary_bytes_give_rows_or_an_error_naming_file_and_line(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        parse_checked(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn skip_mode_accounts_for_every_line(rows in proptest::collection::vec(row(), 1..12), crlf in any::<bool>()) {
        let text = rows.join(if crlf { "\r\n" } else { "\n" });
        if let Some(parsed) = parse_checked(&text)? {
            let skipped = parsed.skipped.iter().map(|e| e.line);
            let mut lines: Vec<usize> = parsed.rows.iter().map(|r| r.line).chain(skipped).collect();
            lines.sort_unstable();
            prop_assert_eq!(lines, (1..=rows.len()).collect::<Vec<_>>());
        }
    }

    /// What `load_dataset` asks of a row's path: inside the CSV's folder, or refused. Local paths
    /// are resolved by name, so none keeps a `..`; object-store keys are literal (object_store
    /// escapes a `..` segment), so there a `..` cannot climb.
    #[test]
    fn no_accepted_path_leaves_the_dataset_folder(
        parts in proptest::collection::vec(prop::sample::select(PATH_PARTS.to_vec()), 1..6),
        prefix in prop::sample::select(vec!["", "/", "./", "file:///data/set/", "s3://bucket/set/"]),
    ) {
        let path = format!("{prefix}{}", parts.join("/"));
        for csv in ["/data/set/train.csv", "s3://bucket/set/train.csv"] {
            let csv = Location::parse(csv).unwrap();
            let Ok(image) = csv.sibling(&path) else { continue };
            let (shown, folder) = (image.to_string(), csv.to_string().replace("train.csv", ""));
            let inside = shown.strip_prefix(&folder).is_some_and(|rest| !rest.is_empty());
            prop_assert_eq!(csv.folder_contains(&image), inside, "`{}` -> {}", path, shown);
            if shown.starts_with('/') {
                prop_assert!(!shown.split('/').any(|part| part == ".."), "`{}` -> {}", path, shown);
            }
        }
    }
}

#[test]
fn corpus_replays_without_panics() {
    for (name, bytes) in fuzz_support::corpus("csv") {
        parse_checked(&String::from_utf8_lossy(&bytes)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"));
    }
}

fn png(path: &Path) {
    image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 90])).save(path).unwrap();
}

fn options(allow_outside_paths: bool) -> LoadOptions {
    LoadOptions {
        side: 8,
        num_classes: None,
        on_bad_row: OnBadRow::Fail,
        allow_outside_paths,
        cache: CacheBudget::unlimited(),
    }
}

/// A dataset folder with one good image, and a readable image just outside it.
fn dataset_with_secret_outside() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let set = root.path().join("set");
    std::fs::create_dir_all(set.join("sub")).unwrap();
    png(&set.join("ok.png"));
    png(&root.path().join("secret.png"));
    (root, set)
}

async fn load_second_row(set: &Path, path: &str, allow_outside_paths: bool) -> Result<usize, String> {
    let csv = set.join("train.csv");
    std::fs::write(&csv, format!("ok.png,Ann,0\n{path},Ann,0\n")).unwrap();
    load_dataset(csv.to_str().unwrap(), &options(allow_outside_paths)).await.map(|d| d.len()).map_err(|e| e.to_string())
}

#[tokio::test]
async fn hostile_image_paths_never_reach_a_file_outside_the_dataset() {
    let (root, set) = dataset_with_secret_outside();
    let secret = root.path().join("secret.png").display().to_string();
    for path in [
        "../secret.png".to_string(),
        "./../secret.png".to_string(),
        "sub/../../secret.png".to_string(),
        "sub/../../set/../secret.png".to_string(),
        "%2e%2e/secret.png".to_string(),
        "..%2fsecret.png".to_string(),
        "..\\secret.png".to_string(),
        secret.clone(),
        format!("file://{secret}"),
        format!("{}/../secret.png", set.display()),
    ] {
        let err = load_second_row(&set, &path, false).await.expect_err(&path);
        assert!(err.contains("train.csv:2: image"), "`{path}`: {err}");
    }
    // The same file is reachable when the job allows it, so the refusals above are the guard at work.
    assert_eq!(load_second_row(&set, "../secret.png", true).await, Ok(2));
}

#[tokio::test]
async fn nul_bytes_and_huge_paths_are_bad_rows_not_crashes() {
    let (_root, set) = dataset_with_secret_outside();
    for path in ["ok\0.png".to_string(), "a/".repeat(2000)] {
        let err = load_second_row(&set, &path, false).await.unwrap_err();
        assert!(err.contains("train.csv:2:"), "{err}");
    }
}

/// Regression: with `num_classes` unset the class count is the largest label + 1, so one row
/// labelled 10^12 made the loader allocate a trillion class names (abort), and `usize::MAX`
/// overflowed. Labels are now bounded by `MAX_CLASSES` (corpus: `regression-*-label.csv`).
#[tokio::test]
async fn regression_a_huge_label_is_a_bad_row_not_an_abort() {
    let (_root, set) = dataset_with_secret_outside();
    for label in ["1000000000000", &usize::MAX.to_string(), &MAX_CLASSES.to_string()] {
        let csv = set.join("train.csv");
        std::fs::write(&csv, format!("ok.png,Ann,{label}\n")).unwrap();
        let err = load_dataset(csv.to_str().unwrap(), &options(false)).await.unwrap_err().to_string();
        assert!(err.contains("train.csv:1: label") && err.contains(&MAX_CLASSES.to_string()), "{err}");
    }
}

/// Regression, the same allocation from the job's side: `dataset.num_classes = 10^12`.
#[tokio::test]
async fn regression_a_huge_class_count_is_refused_before_allocating() {
    let (_root, set) = dataset_with_secret_outside();
    let csv = set.join("train.csv");
    std::fs::write(&csv, "ok.png,Ann,0\n").unwrap();
    let options = LoadOptions { num_classes: Some(1_000_000_000_000), ..options(false) };
    let err = load_dataset(csv.to_str().unwrap(), &options).await.unwrap_err().to_string();
    assert!(err.contains("train.csv: num_classes = 1000000000000 is more than the 1000000"), "{err}");
}

#[tokio::test]
async fn a_csv_that_is_not_utf8_names_the_file() {
    let (_root, set) = dataset_with_secret_outside();
    let csv = set.join("train.csv");
    std::fs::write(&csv, b"ok.png,Ann\xff,0\n").unwrap();
    let err = load_dataset(csv.to_str().unwrap(), &options(false)).await.unwrap_err().to_string();
    assert!(err.contains("train.csv") && err.contains("not UTF-8"), "{err}");
}
