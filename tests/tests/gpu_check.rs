//! The GPU check (`make gpu-check`, bench/gpu_check.py) on the CPU: the same script and code
//! path a GPU run takes, with backend flex, so it is known to work before the one short run on a
//! GPU machine.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use facetrain_tests::{binary, lfw5_dir};

#[test]
fn the_gpu_check_runs_end_to_end_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gpu.json");
    let lfw5 = lfw5_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/gpu_check.py");
    let run = Command::new("python3")
        .arg(&script)
        .args(["--facectl", binary("facectl").to_str().unwrap()])
        .args(["--shared", dir.path().to_str().unwrap(), "--lfw5", lfw5.to_str().unwrap()])
        .args(["--backend", "flex", "--device", "cpu", "--quick", "--no-reference"])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(result["errors"], serde_json::json!([]), "{result}");
    assert_eq!((result["backend"].as_str(), result["device"].as_str()), (Some("flex"), Some("cpu")));
    assert!(result["step"]["ms_per_step"]["8"].as_f64().unwrap() > 0.0, "{result}");
    for batch in ["1", "8"] {
        assert!(result["infer"]["ms_per_call"][batch].as_f64().unwrap() > 0.0, "{result}");
    }
    assert_eq!(result["time_to_90"]["steps"], 3, "{result}");
    let distributed = &result["distributed"];
    assert_eq!((distributed["workers"].as_u64(), distributed["steps"].as_u64()), (Some(2), Some(2)), "{result}");
    assert_eq!(distributed["stopped"], "completed 2 steps with 2 workers");
    assert_eq!(result["pytorch"], "not run (--no-reference)", "the JSON says what was left out");
}
