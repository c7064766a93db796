//! `facectl dataset import PHOTOS OUT`: folders of photos, one per person (the folder's name is
//! the person's), become a dataset facetrain trains on: square crops of the model's size, a
//! stratified seeded train/validate split that keeps near-duplicate photos on one side, the two
//! CSVs and a summary. Reads from and writes to a folder or an object-store prefix.
//!
//! No face detection: no detector can be used here without downloading a model at run time, and
//! none may be shipped without a licence that allows it. The crop is the centred square, which
//! suits face datasets that centre the face (LFW and its kin).

use std::collections::BTreeMap;

use bytes::Bytes;
use clap::Args;
use facetrain_worker::data::image::{MAX_IMAGE_FILE_BYTES, MODEL_SIDES, RgbImage, decode_centre_square};
use facetrain_worker::data::import::{Hash, difference_hash, near_duplicate_groups, split_person};
use facetrain_worker::storage::Location;
use futures::StreamExt;

use crate::args::{bounded, decimal, widen};
use crate::output::{Output, print_json};

/// Files read and decoded at once.
const CONCURRENCY: usize = 16;
/// JPEG quality of the crops written.
const JPEG_QUALITY: u8 = 95;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A folder (or s3://, gs:// prefix) holding one folder of photos per person.
    photos: String,
    /// Where the dataset goes: train/, validate/, train.csv, validate.csv, import-summary.json.
    out: String,
    /// Share of each person's photos kept for validation (whole near-duplicate groups).
    #[arg(long, default_value_t = 0.2, value_parser = |t: &str| decimal(t, 0.0..=0.9, "a fraction"))]
    validate: f64,
    /// Side of the square crops, as model.image_size.
    #[arg(long, default_value_t = 96, value_parser = |t: &str| bounded::<u64>(t, widen(MODEL_SIDES)))]
    size: u64,
    /// Seed of the split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// One photo: where it came from and what became of it.
struct Photo {
    source: Location,
    /// Path under PHOTOS, for messages.
    relative: String,
    person: String,
    result: Result<(RgbImage, Hash), String>,
}

impl ImportArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let root = Location::parse(&self.photos)?;
        let out = Location::parse(&self.out)?;
        let side = self.size as usize;
        let listed = root.list().await?;
        let prefix = root.to_string();
        let mut skipped: Vec<(String, String)> = Vec::new();
        let mut wanted = Vec::new();
        for location in listed {
            let relative =
                location.to_string().strip_prefix(&prefix).unwrap_or_default().trim_start_matches('/').to_string();
            let Some((person, _)) = relative.split_once('/') else {
                skipped.push((relative, "not in a person's folder".into()));
                continue;
            };
            let lower = relative.to_ascii_lowercase();
            if ![".jpg", ".jpeg", ".png"].iter().any(|ext| lower.ends_with(ext)) {
                skipped.push((relative, "not a .jpg, .jpeg or .png file".into()));
                continue;
            }
            wanted.push((location, person.to_string(), relative));
        }
        let photos: Vec<Photo> = futures::stream::iter(wanted)
            .map(|(source, person, relative)| async move {
                let result = match source.read_at_most(MAX_IMAGE_FILE_BYTES).await {
                    Ok(bytes) => tokio::task::spawn_blocking(move || {
                        decode_centre_square(&bytes, side).map(|image| {
                            let hash = difference_hash(&image);
                            (image, hash)
                        })
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("decoding panicked: {e}"))),
                    Err(e) => Err(e.to_string()),
                };
                Photo { source, relative, person, result }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;

        let mut people: BTreeMap<String, Vec<(String, RgbImage, Hash)>> = BTreeMap::new();
        for photo in photos {
            match photo.result {
                Ok((image, hash)) => people.entry(photo.person).or_default().push((photo.relative, image, hash)),
                Err(reason) => skipped.push((photo.relative, format!("{reason} ({})", photo.source))),
            }
        }
        anyhow::ensure!(!people.is_empty(), "{}: no person's folder with a readable JPEG or PNG photo", self.photos);

        let mut csv = [csv::Writer::from_writer(Vec::new()), csv::Writer::from_writer(Vec::new())];
        let mut writes = Vec::new();
        let mut summary_people = Vec::new();
        let (mut groups_total, mut grouped_images) = (0, 0);
        let mut near_duplicates: Vec<Vec<String>> = Vec::new();
        for (label, (person, photos)) in people.iter().enumerate() {
            let hashes: Vec<Hash> = photos.iter().map(|(_, _, h)| *h).collect();
            let groups = near_duplicate_groups(&hashes);
            let shared: Vec<&Vec<usize>> = groups.iter().filter(|g| g.len() > 1).collect();
            groups_total += shared.len();
            grouped_images += shared.iter().map(|g| g.len()).sum::<usize>();
            near_duplicates.extend(shared.iter().map(|g| g.iter().map(|&i| photos[i].0.clone()).collect::<Vec<_>>()));
            let to_validate = split_person(&groups, self.validate, self.seed ^ (label as u64).wrapping_mul(0x9E37));
            let mut used = std::collections::HashSet::new();
            for (index, (relative, image, _)) in photos.iter().enumerate() {
                let side_name = if to_validate[index] { "validate" } else { "train" };
                let stem = relative.rsplit('/').next().unwrap_or(relative);
                let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
                let mut name = format!("{side_name}/{person}/{stem}.jpg");
                let mut n = 2;
                while !used.insert(name.clone()) {
                    name = format!("{side_name}/{person}/{stem}-{n}.jpg");
                    n += 1;
                }
                csv[usize::from(to_validate[index])].write_record([name.as_str(), person, &label.to_string()])?;
                writes.push((name, encode_jpeg(image)?));
            }
            let validate = to_validate.iter().filter(|v| **v).count();
            summary_people.push(serde_json::json!({
                "name": person, "label": label, "images": photos.len(),
                "train": photos.len() - validate, "validate": validate,
            }));
        }
        let written = writes.len();
        futures::stream::iter(writes)
            .map(|(name, bytes)| {
                let out = &out;
                async move { out.child(&name)?.write(bytes).await }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let [train, validate] = csv;
        out.child("train.csv")?.write(Bytes::from(train.into_inner()?)).await?;
        out.child("validate.csv")?.write(Bytes::from(validate.into_inner()?)).await?;
        skipped.sort();
        let summary = serde_json::json!({
            "photos": self.photos, "out": self.out, "size": side, "validate_fraction": self.validate,
            "seed": self.seed, "crop": "centre square (no face detection)",
            "people": summary_people, "images": written,
            "near_duplicate_groups": groups_total, "images_in_near_duplicate_groups": grouped_images,
            "near_duplicates": near_duplicates,
            "skipped": skipped.iter().map(|(file, reason)| serde_json::json!({"file": file, "reason": reason})).collect::<Vec<_>>(),
        });
        out.child("import-summary.json")?.write(Bytes::from(serde_json::to_vec_pretty(&summary)?)).await?;
        match output {
            Output::Json => print_json(&summary),
            Output::Text => {
                for person in &summary_people {
                    println!(
                        "{:>4} {:<32} {:>5} images: {:>5} train, {:>4} validate",
                        person["label"],
                        person["name"].as_str().unwrap_or(""),
                        person["images"],
                        person["train"],
                        person["validate"]
                    );
                }
                println!(
                    "{written} images of {} people written to {}; {groups_total} near-duplicate groups ({grouped_images} \
                     images) kept on one side of the split; {} files skipped",
                    people.len(),
                    self.out,
                    skipped.len()
                );
                for (file, reason) in &skipped {
                    println!("skipped {file}: {reason}");
                }
            }
        }
        Ok(())
    }
}

fn encode_jpeg(image: &RgbImage) -> anyhow::Result<Bytes> {
    let mut out = Vec::new();
    let side = image.side as u32;
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).encode(
        &image.pixels,
        side,
        side,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(Bytes::from(out))
}
