//! Hostile and mistaken input to the binaries: numeric flags out of range are refused with the
//! range before anything is written, and suspicious datasets are warned about with the labels.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use facetrain_tests::{binary, facectl, small_dataset, small_job};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn numeric_flags_out_of_range_are_refused_with_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let target = target.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["certs", "create", target, "--days", "4000000"], "1..=3650"),
        (&["certs", "create", target, "--days", "0"], "1..=3650"),
        (&["dataset", "check", "x.csv", "--image-size", "100000"], "8..=1024"),
        (&["dataset", "check", "x.csv", "--image-size", "0"], "8..=1024"),
        (&["dataset", "synth", target, "--train-per-person", "0"], "1..=100000"),
        (&["dataset", "synth", target, "--validate-per-person", "0"], "1..=100000"),
        (&["dataset", "synth", target, "--train-per-person", "99999999999"], "1..=100000"),
        (&["dataset", "synth", target, "--image-size", "5"], "8..=1024"),
        (&["local", "job.toml", "--max-steps", "0"], "1..=1000000000"),
        (&["predict", "--checkpoint", "c", "--top-k", "0", "a.jpg"], "1..=1000"),
        (&["cancel", "j", "--hands-on-seconds=-5"], "0..=604800"),
        (&["cancel", "j", "--hands-on-seconds", "NaN"], "0..=604800"),
        (&["toil", "--since", "999999999999999999d"], "limit of 3650d"),
        (&["status", "j", "--timeout", "0"], "1..=3600"),
        (&["bench", "step", "--batch", "0"], "1..=65536"),
        (&["bench", "step", "--steps", "0"], "1..=100000"),
        (&["bench", "infer", "--iters", "0"], "1..=100000"),
        (&["bench", "loopback", "--megabytes", "99999999"], "1..=65536"),
        (&["bench", "pipeline", "--csv", "x.csv", "--batch", "0"], "1..=65536"),
    ];
    for (args, range) in cases {
        let output = facectl(args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(range) && !text.contains("panicked"), "{args:?}: {text}");
        assert!(!Path::new(target).exists(), "{args:?} wrote {target}");
    }
}

#[test]
fn label_gaps_and_another_datasets_names_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    // Grace Hopper moves from label 2 to 6: labels 2 and 5 have no rows.
    for csv in ["train.csv", "validate.csv"] {
        let path = data.join(csv);
        let text = std::fs::read_to_string(&path).unwrap().replace(",Grace_Hopper,2", ",Grace_Hopper,6");
        std::fs::write(&path, text).unwrap();
    }
    let train = data.join("train.csv");
    let output = facectl(&["dataset", "check", train.to_str().unwrap(), "--image-size", "32", "--output", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["labels_without_rows"], serde_json::json!([2, 5]));
    assert!(
        stderr(&output).contains("labels with no rows") && stderr(&output).contains("labels=2, 5"),
        "{}",
        stderr(&output)
    );

    // Training start says it too.
    let job = small_job(dir.path(), "gaps", &data, 1, 2, "");
    let output = facectl(&["local", job.to_str().unwrap(), "--output", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("labels with no rows") && stderr(&output).contains("labels=2, 5"),
        "{}",
        stderr(&output)
    );
    let run: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let checkpoint = run["checkpoint"].as_str().unwrap();

    // The checkpoint's names against a CSV that calls label 0 someone else.
    let other = data.join("other.csv");
    let text = std::fs::read_to_string(data.join("validate.csv")).unwrap().replace(",Ada_Lovelace,0", ",Ann_Other,0");
    std::fs::write(&other, text).unwrap();
    let output = facectl(&["eval", "--checkpoint", checkpoint, "--csv", other.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("label 0 is `Ann_Other` in the CSV but `Ada_Lovelace` in the checkpoint"),
        "{}",
        stderr(&output)
    );
    let output = facectl(&["eval", "--checkpoint", checkpoint, "--csv", data.join("validate.csv").to_str().unwrap()]);
    assert!(!stderr(&output).contains("class names differ"), "{}", stderr(&output));
}

#[test]
fn a_metrics_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = Command::new(binary("facetrain-worker"))
        .args(["--coordinator", "http://127.0.0.1:1", "--metrics-listen", &address, "--peer-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains(&format!("cannot listen on {address} for /metrics")), "{}", stderr(&output));
}
