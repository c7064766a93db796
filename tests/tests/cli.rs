//! The facectl commands a user runs on one machine, end to end on generated data.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use facetrain_tests::{facectl, facectl_json, small_job};
use facetrain_worker::data::synth::PEOPLE;

fn synth(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let output = facectl(&[
        "dataset",
        "synth",
        data.to_str().unwrap(),
        "--image-size",
        "32",
        "--train-per-person",
        "8",
        "--validate-per-person",
        "4",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    data
}

#[test]
fn synth_check_train_eval_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let check = facectl_json(&facectl(&[
        "dataset",
        "check",
        data.join("train.csv").to_str().unwrap(),
        "--image-size",
        "32",
        "--output",
        "json",
    ]));
    assert_eq!(check["rows"], 40);
    assert_eq!(check["classes"][2]["name"], "Grace_Hopper");
    assert_eq!(check["classes"][2]["count"], 8);

    let job = small_job(dir.path(), "cli", &data, 1, 20, "");
    let run = facectl_json(&facectl(&["local", job.to_str().unwrap(), "--output", "json"]));
    assert_eq!(run["steps"], 20);
    for key in ["val_accuracy", "train_loss", "wall_seconds", "images_per_second"] {
        assert!(run[key].as_f64().is_some_and(f64::is_finite), "{key} missing: {run}");
    }
    let checkpoint = run["checkpoint"].as_str().unwrap().to_string();
    assert!(checkpoint.ends_with("ckpt-0000000020.ftck"));

    let eval = facectl_json(&facectl(&[
        "eval",
        "--checkpoint",
        &checkpoint,
        "--csv",
        data.join("validate.csv").to_str().unwrap(),
        "--output",
        "json",
    ]));
    assert_eq!(eval["samples"], 20);
    assert!(
        (eval["accuracy"].as_f64().unwrap() - run["val_accuracy"].as_f64().unwrap()).abs() < 1e-9,
        "eval agrees with the run"
    );
    assert_eq!(eval["confusion"].as_array().unwrap().len(), 5);

    let image = data.join("validate/Alan_Turing/Alan_Turing_0000.jpg");
    let predicted = facectl_json(&facectl(&[
        "predict",
        "--checkpoint",
        &checkpoint,
        "--top-k",
        "2",
        "--output",
        "json",
        image.to_str().unwrap(),
    ]));
    let top = predicted[0]["predictions"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    assert!(top[0]["probability"].as_f64().unwrap() >= top[1]["probability"].as_f64().unwrap());
    assert!(PEOPLE.contains(&top[0]["name"].as_str().unwrap()));

    // A folder is every image under it, in order; CSV has a row per image and rank.
    let folder = data.join("validate/Alan_Turing");
    let args = ["predict", "--checkpoint", &checkpoint, "--top-k", "2", "--output", "csv", folder.to_str().unwrap()];
    let csv = facectl(&args);
    assert!(csv.status.success(), "{}", String::from_utf8_lossy(&csv.stderr));
    let csv = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "image,rank,name,probability");
    assert_eq!(lines.len(), 1 + 4 * 2, "4 validation images of one person, 2 ranks each:\n{csv}");
    assert!(lines[1].contains("Alan_Turing_0000.jpg,1,") && lines[2].contains("Alan_Turing_0000.jpg,2,"), "{csv}");
    assert!(lines[7].contains("Alan_Turing_0003.jpg,1,"), "{csv}");
    let empty = dir.path().join("no-images");
    std::fs::create_dir_all(&empty).unwrap();
    let refused = facectl(&["predict", "--checkpoint", &checkpoint, empty.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no images under it"), "{refused:?}");

    // Running the same job again resumes from its checkpoint and trains only what is left.
    let again = facectl_json(&facectl(&["local", job.to_str().unwrap(), "--output", "json", "--max-steps", "25"]));
    assert_eq!((again["resumed_from_step"].as_u64(), again["steps"].as_u64()), (Some(20), Some(25)));
}

#[test]
fn local_mode_with_several_workers_runs_the_real_protocol_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let job = small_job(dir.path(), "cluster", &data, 2, 15, "");
    let run = facectl_json(&facectl(&["local", job.to_str().unwrap(), "--output", "json"]));
    assert_eq!(
        (run["steps"].as_u64(), run["workers"].as_u64(), run["incidents"].as_u64()),
        (Some(15), Some(2), Some(0)),
        "{run}"
    );
    assert!(run["checkpoint"].as_str().unwrap().ends_with("ckpt-0000000015.ftck"));
}

#[test]
fn bad_jobs_and_missing_checkpoints_are_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("bad.toml");
    std::fs::write(
        &job,
        "name = \"x\"\n[dataset]\ntrain = \"t.csv\"\nvalidate = \"v.csv\"\n[model]\nkeep_prob = 2.0\n",
    )
    .unwrap();
    let output = facectl(&["local", job.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("model.keep_prob") && stderr.contains("bad.toml"), "{stderr}");

    let output = facectl(&["eval", "--checkpoint", dir.path().to_str().unwrap(), "--csv", "x.csv"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("no readable checkpoint"), "{stderr}");
}

/// Given a checkpoint folder, `eval` uses the best checkpoint by validation accuracy (kept even
/// when it is older than the last `keep`), not the newest: the run's own accuracy curve says
/// which step that is, and eval measures the same accuracy again.
#[test]
fn eval_on_a_folder_uses_the_best_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path());
    let job = small_job(dir.path(), "best", &data, 1, 30, "");
    // A rate of 0.01 peaks at step 25 (0.75) and falls back at 30 (0.65) on this data and seed.
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("eval_every = 10\n", "eval_every = 5\n")
        .replace("learning_rate = 0.001\n", "learning_rate = 0.01\n")
        .replace("keep = 3\n", "keep = 1\n");
    std::fs::write(&job, text).unwrap();
    let run = facectl_json(&facectl(&["local", job.to_str().unwrap(), "--output", "json"]));
    let curve: Vec<(u64, f64)> = run["accuracy_curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| (point[0].as_u64().unwrap(), point[1].as_f64().unwrap()))
        .collect();
    assert_eq!(curve.len(), 6, "{run}");
    let best = curve.iter().fold(curve[0], |best, &point| if point.1 > best.1 { point } else { best });
    let folder = dir.path().join("checkpoints-best");
    let eval = facectl_json(&facectl(&[
        "eval",
        "--checkpoint",
        folder.to_str().unwrap(),
        "--csv",
        data.join("validate.csv").to_str().unwrap(),
        "--output",
        "json",
    ]));
    assert_ne!(best.0, 30, "the run must peak before its end, or this checks nothing: {curve:?}");
    assert_eq!(eval["step"], best.0, "curve {curve:?}: {eval}");
    assert!((eval["accuracy"].as_f64().unwrap() - best.1).abs() < 1e-9, "curve {curve:?}: {eval}");
}
