//! Shared by the proptest fuzz tests of proto and worker (each includes it with `#[path]`): how
//! many cases to run, and the kept corpus every test replays. Not part of the cargo-fuzz crate.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::path::PathBuf;

use proptest::test_runner::Config;

/// `default_cases` keeps CI at a few seconds per file; `PROPTEST_CASES=100000` runs longer.
/// Failures are not persisted next to the sources: a crash worth keeping goes to the corpus.
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Every file of `fuzz/corpus/<target>` as (file name, bytes), sorted by name; panics when the
/// folder is missing or empty, so a renamed folder cannot silently replay nothing.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}
