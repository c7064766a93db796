//! `facectl dataset pack` on real faces (lfw5's JPEGs): shards that hold every image unchanged,
//! an index that `facectl dataset check` reads like any dataset, and bad images named by line.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use facetrain_tests::{facectl, facectl_json, lfw5_dir};

fn check(csv: &Path) -> serde_json::Value {
    facectl_json(&facectl(&["dataset", "check", csv.to_str().unwrap(), "--output", "json"]))
}

#[test]
fn lfw5_packs_into_shards_that_hold_every_image_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("packed");
    let csv = lfw5_dir().join("train.csv");
    let summary = facectl_json(&facectl(&[
        "dataset",
        "pack",
        csv.to_str().unwrap(),
        out.to_str().unwrap(),
        "--shard-mb",
        "0.25",
        "--output",
        "json",
    ]));
    let text = std::fs::read_to_string(&csv).unwrap();
    let images: Vec<Vec<u8>> =
        text.lines().map(|line| std::fs::read(lfw5_dir().join(line.split(',').next().unwrap())).unwrap()).collect();
    let bytes: usize = images.iter().map(Vec::len).sum();
    assert_eq!((summary["rows"].as_u64(), summary["image_bytes"].as_u64()), (Some(200), Some(bytes as u64)));
    let mut shards: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".pack"))
        .collect();
    shards.sort();
    assert_eq!(shards.len() as u64, summary["shards"].as_u64().unwrap());
    assert!(shards.len() >= bytes / (1 << 18), "shards of a quarter MiB: {shards:?}");

    // Every range of the index is one of the original files, byte for byte, each once.
    let index = std::fs::read_to_string(out.join("index.csv")).unwrap();
    let mut packed: Vec<Vec<u8>> = index
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let shard = std::fs::read(out.join(fields[0])).unwrap();
            let (offset, length): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
            shard[offset..offset + length].to_vec()
        })
        .collect();
    let mut originals = images.clone();
    packed.sort();
    originals.sort();
    assert!(packed == originals, "the shards hold the 200 images unchanged");

    // The index is a dataset: the same classes and counts.
    let (plain, packed) = (check(&csv), check(&out.join("index.csv")));
    assert_eq!(packed["rows"], 200);
    assert_eq!(packed["classes"], plain["classes"]);
}

#[test]
fn a_bad_image_stops_the_pack_by_its_line_or_is_left_out_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let lfw5 = lfw5_dir();
    let rows: Vec<String> =
        std::fs::read_to_string(lfw5.join("train.csv")).unwrap().lines().take(3).map(String::from).collect();
    let mut csv = String::new();
    for (i, row) in rows.iter().enumerate() {
        let source = row.split(',').next().unwrap();
        std::fs::copy(lfw5.join(source), data.join(format!("{i}.jpg"))).unwrap();
        csv.push_str(&format!("{i}.jpg,{}\n", row.split_once(',').unwrap().1));
        if i == 1 {
            std::fs::write(data.join("junk.jpg"), b"not a jpeg").unwrap();
            csv.push_str(&format!("junk.jpg,{}\n", row.split_once(',').unwrap().1));
        }
    }
    std::fs::write(data.join("train.csv"), csv).unwrap();
    let csv = data.join("train.csv");
    let out = dir.path().join("packed");

    let failed = facectl(&["dataset", "pack", csv.to_str().unwrap(), out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(stderr.contains("train.csv:3: image `junk.jpg`"), "{stderr}");
    assert!(!out.join("index.csv").exists(), "no index for a pack that stopped");

    let args = ["dataset", "pack", csv.to_str().unwrap(), out.to_str().unwrap(), "--skip-bad-rows", "--output", "json"];
    let summary = facectl_json(&facectl(&args));
    assert_eq!(summary["rows"], 3);
    assert_eq!(summary["bad_rows"][0]["line"], 3, "{summary}");
    assert_eq!(check(&out.join("index.csv"))["rows"], 3);
}
