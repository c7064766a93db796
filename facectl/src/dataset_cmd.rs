//! `facectl dataset check|synth`.

use std::path::Path;

use facetrain_worker::data::dataset::{LoadOptions, load_dataset};
use facetrain_worker::data::synth::{SynthOptions, write_synthetic_dataset};
use facetrain_worker::job::OnBadRow;

use crate::output::{Output, print_json};

pub async fn check(csv: &str, image_size: usize, skip_bad_rows: bool, output: Output) -> anyhow::Result<()> {
    let on_bad_row = if skip_bad_rows { OnBadRow::Skip } else { OnBadRow::Fail };
    let options = LoadOptions { side: image_size, num_classes: None, on_bad_row, allow_outside_paths: false };
    let dataset = load_dataset(csv, &options).await?;
    let counts = dataset.count_per_class();
    match output {
        Output::Json => print_json(&serde_json::json!({
            "csv": csv,
            "rows": dataset.len(),
            "num_classes": dataset.num_classes,
            "classes": dataset.class_names.iter().zip(&counts).enumerate()
                .map(|(label, (name, count))| serde_json::json!({"label": label, "name": name, "count": count}))
                .collect::<Vec<_>>(),
            "resized_images": dataset.resized,
            "labels_without_rows": dataset.labels_without_rows(),
            "bad_rows": dataset.skipped.iter().map(|e| serde_json::json!({"line": e.line, "problem": e.message})).collect::<Vec<_>>(),
        })),
        Output::Text => {
            println!(
                "{csv}: {} rows, {} classes, {} images resized to {image_size}x{image_size}",
                dataset.len(),
                dataset.num_classes,
                dataset.resized
            );
            for (label, (name, count)) in dataset.class_names.iter().zip(&counts).enumerate() {
                println!("  {label:>3} {name:<30} {count}");
            }
            for bad in &dataset.skipped {
                println!("  bad row {csv}:{}: {}", bad.line, bad.message);
            }
        }
    }
    if !dataset.skipped.is_empty() {
        anyhow::bail!("{} bad rows in {csv}", dataset.skipped.len());
    }
    Ok(())
}

pub fn synth(
    dir: &Path,
    train_per_person: usize,
    validate_per_person: usize,
    seed: u64,
    image_size: u32,
) -> anyhow::Result<()> {
    let options = SynthOptions { side: image_size, train_per_person, validate_per_person, seed };
    let written = write_synthetic_dataset(dir, &options)?;
    println!("wrote {written} images, {0}/train.csv and {0}/validate.csv", dir.display());
    Ok(())
}
