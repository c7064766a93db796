//! The job store file is input too: a disk can hand back damaged bytes. Whatever bytes are
//! flipped, opening the store and reading its jobs gives jobs or an error that names the file,
//! never a panic that takes the coordinator down.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use facetrain_coordinator::record::JobRecord;
use facetrain_coordinator::store::JobStore;
use proptest::prelude::*;

fn pristine() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.redb");
    let store = JobStore::open(&path).unwrap();
    for i in 0..12u64 {
        let mut job = JobRecord::queued(format!("j-{i}"), format!("job {i}"), "x".repeat(300), "t".into(), 100, i);
        job.step = i * 7;
        store.put(&job).unwrap();
    }
    drop(store);
    std::fs::read(&path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_damaged_store_opens_or_is_refused_with_the_file_named(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..40),
        truncate in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = pristine();
        for (index, mask) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= mask;
        }
        if let Some(cut) = truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.redb");
        std::fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| JobStore::open(&path).and_then(|store| store.all()));
        match outcome {
            Err(_) => prop_assert!(false, "the store panicked on a damaged file"),
            Ok(Err(error)) => prop_assert!(error.to_string().contains(&path.display().to_string()), "{}", error),
            Ok(Ok(jobs)) => prop_assert!(jobs.len() <= 12),
        }
    }
}
