//! `facectl dataset import` on real photos (lfw5's JPEGs laid out one folder per person, plus
//! copies, other sizes and formats, and files that are not photos), end to end to a trained step.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use facetrain_tests::{facectl, lfw5_dir};

fn import(photos: &Path, out: &Path, seed: &str) -> serde_json::Value {
    let output = facectl(&[
        "dataset",
        "import",
        photos.to_str().unwrap(),
        out.to_str().unwrap(),
        "--size",
        "64",
        "--validate",
        "0.25",
        "--seed",
        seed,
        "--output",
        "json",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The side of the split each CSV row landed on, by file stem.
fn side_of(out: &Path, stem: &str) -> Vec<&'static str> {
    ["train", "validate"]
        .into_iter()
        .filter(|side| {
            std::fs::read_to_string(out.join(format!("{side}.csv"))).unwrap().lines().any(|l| l.contains(stem))
        })
        .collect()
}

#[test]
fn photos_in_person_folders_become_a_dataset_that_trains() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    let lfw5 = lfw5_dir().join("train");
    let mut people: Vec<_> = std::fs::read_dir(&lfw5).unwrap().flatten().map(|e| e.file_name()).collect();
    people.sort();
    for person in &people {
        let mut files: Vec<_> = std::fs::read_dir(lfw5.join(person)).unwrap().flatten().map(|e| e.path()).collect();
        files.sort();
        std::fs::create_dir_all(photos.join(person)).unwrap();
        for file in files.iter().take(12) {
            std::fs::copy(file, photos.join(person).join(file.file_name().unwrap())).unwrap();
        }
    }
    // Near-duplicates: an exact copy, and a photo upscaled to 150x150, brightened and saved as a
    // JPEG of quality 40 (no longer the same pixels: a hash distance of 0 would miss it).
    let first = photos.join(&people[0]);
    let mut originals: Vec<_> = std::fs::read_dir(&first).unwrap().flatten().map(|e| e.path()).collect();
    originals.sort();
    std::fs::copy(&originals[0], first.join("copy-of-first.jpg")).unwrap();
    let upscaled = image::open(&originals[1]).unwrap().resize_exact(150, 150, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 40).encode_image(&upscaled.brighten(12)).unwrap();
    std::fs::write(first.join("bigger-second.jpg"), jpeg).unwrap();
    // A wide photo: the centred square is taken, not a squashed picture.
    let wide = image::open(&originals[2]).unwrap().resize_exact(144, 96, image::imageops::FilterType::Triangle);
    wide.save(first.join("wide.png")).unwrap();
    // Files that are not photos, or not in a person's folder.
    std::fs::write(first.join("notes.txt"), "taken in 2004").unwrap();
    std::fs::write(first.join("broken.jpg"), b"\xff\xd8\xff not really").unwrap();
    std::fs::copy(&originals[3], photos.join("loose.jpg")).unwrap();

    let out = dir.path().join("dataset");
    let summary = import(&photos, &out, "3");
    let skipped: Vec<(String, String)> = summary["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["file"].as_str().unwrap().to_string(), s["reason"].as_str().unwrap().to_string()))
        .collect();
    let reason =
        |file: &str| skipped.iter().find(|(f, _)| f.ends_with(file)).map(|(_, r)| r.clone()).unwrap_or_default();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(reason("notes.txt").contains("not a .jpg"), "{skipped:?}");
    assert!(reason("broken.jpg").contains("undecodable"), "{skipped:?}");
    assert!(reason("loose.jpg").contains("not in a person's folder"), "{skipped:?}");

    let total = people.len() * 12 + 3;
    assert_eq!(summary["images"], total, "{summary}");
    let groups: Vec<String> = summary["near_duplicates"].as_array().unwrap().iter().map(|g| g.to_string()).collect();
    for copy in ["copy-of-first", "bigger-second"] {
        assert!(groups.iter().any(|g| g.contains(copy)), "{copy} is grouped with its original: {groups:?}");
    }
    for (copy, original) in [("copy-of-first", &originals[0]), ("bigger-second", &originals[1])] {
        let stem = original.file_stem().unwrap().to_str().unwrap();
        let (a, b) = (side_of(&out, copy), side_of(&out, stem));
        assert_eq!((a.len(), &a), (1, &b), "{copy} and {stem} must be on the same side");
    }
    for person in summary["people"].as_array().unwrap() {
        assert!(person["validate"].as_u64().unwrap() >= 2 && person["train"].as_u64().unwrap() >= 8, "{person}");
    }
    let wide = image::open(out.join(format!("{}/{}/wide.jpg", side_of(&out, "wide")[0], people[0].to_str().unwrap())));
    assert_eq!(wide.unwrap().to_rgb8().dimensions(), (64, 64));

    let again = dir.path().join("again");
    import(&photos, &again, "3");
    for csv in ["train.csv", "validate.csv"] {
        let (a, b) = (std::fs::read(out.join(csv)).unwrap(), std::fs::read(again.join(csv)).unwrap());
        assert_eq!(a, b, "the same seed gives the same split");
    }
    let other = dir.path().join("other");
    import(&photos, &other, "4");
    assert_ne!(std::fs::read(out.join("validate.csv")).unwrap(), std::fs::read(other.join("validate.csv")).unwrap());

    let check = facectl(&["dataset", "check", out.join("train.csv").to_str().unwrap(), "--image-size", "64"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "name = \"imported\"\n[dataset]\ntrain = \"{}\"\nvalidate = \"{}\"\n[model]\nimage_size = 64\n\
             [training]\nbatch_size = 16\nmax_steps = 2\neval_every = 0\n",
            out.join("train.csv").display(),
            out.join("validate.csv").display()
        ),
    )
    .unwrap();
    let trained = facectl(&["local", job.to_str().unwrap(), "--output", "json"]);
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
}
