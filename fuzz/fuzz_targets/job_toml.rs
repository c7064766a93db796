//! job.toml text, as SubmitJob receives it: parsing must never panic, and an accepted job must
//! survive the TOML round trip that carries it to the workers. Mirrors
//! proto/tests/fuzz_job_toml.rs, on the same corpus (fuzz/corpus/job_toml).

#![no_main]

use facetrain_proto::job::JobSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match JobSpec::parse(&text, "job.toml") {
        Ok(spec) => assert_eq!(JobSpec::parse(&spec.to_toml(), "round trip").ok(), Some(spec)),
        Err(e) => assert!(e.to_string().starts_with("invalid job: job.toml: "), "{e}"),
    }
});
