//! `facectl dataset check|synth|import|pack`: validate a dataset before a job trains on it, write a
//! small generated one to try facetrain without data, import photos, pack images into shards.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use facetrain_worker::data::cache::CacheBudget;
use facetrain_worker::data::dataset::{LoadOptions, load_dataset};
use facetrain_worker::data::synth::{SynthOptions, write_synthetic_dataset};
use facetrain_worker::job::OnBadRow;

use crate::args::{bounded, widen};
use crate::output::{Output, print_json};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a dataset CSV and every image it names; print counts per class.
    Check(CheckArgs),
    /// Write a small generated face-like dataset (deterministic) with train.csv and validate.csv.
    Synth(SynthArgs),
    /// Folders of photos, one per person, to a dataset: centred square crops, a stratified
    /// seeded split that keeps near-duplicates on one side, train.csv and validate.csv.
    Import(crate::import::ImportArgs),
    /// Pack a dataset's images into shards of a few MB with an index CSV a job points at: a
    /// worker reads byte ranges, a few requests per step instead of one per image.
    Pack(crate::pack::PackArgs),
}

impl Command {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        match self {
            Self::Check(args) => args.run(output).await,
            Self::Synth(args) => args.run(output),
            Self::Import(args) => args.run(output).await,
            Self::Pack(args) => args.run(output).await,
        }
    }
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    csv: String,
    /// Side of the model's input in pixels (as model.image_size).
    #[arg(long, default_value_t = 96, value_parser = image_size)]
    image_size: u32,
    /// Report bad rows instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
}

impl CheckArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let Self { csv, image_size, skip_bad_rows } = self;
        let on_bad_row = if skip_bad_rows { OnBadRow::Skip } else { OnBadRow::Fail };
        let options = LoadOptions {
            side: image_size as usize,
            num_classes: None,
            on_bad_row,
            allow_outside_paths: false,
            cache: CacheBudget::unlimited(),
        };
        let dataset = load_dataset(&csv, &options).await?;
        let counts = dataset.count_per_class();
        match output {
            Output::Json => print_json(&serde_json::json!({
                "csv": csv,
                "rows": dataset.usable(),
                "num_classes": dataset.num_classes,
                "classes": dataset.class_names.iter().zip(&counts).enumerate()
                    .map(|(label, (name, count))| serde_json::json!({"label": label, "name": name, "count": count}))
                    .collect::<Vec<_>>(),
                "resized_images": dataset.read_counts().resized(),
                "labels_without_rows": dataset.labels_without_rows(),
                "bad_rows": dataset.skipped.iter().map(|e| serde_json::json!({"line": e.line, "problem": e.message})).collect::<Vec<_>>(),
            })),
            Output::Text => {
                println!(
                    "{csv}: {} rows, {} classes, {} images resized to {image_size}x{image_size}",
                    dataset.usable(),
                    dataset.num_classes,
                    dataset.read_counts().resized()
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
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    dir: PathBuf,
    #[arg(long, default_value_t = 40, value_parser = per_person)]
    train_per_person: u32,
    #[arg(long, default_value_t = 10, value_parser = per_person)]
    validate_per_person: u32,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value_t = 96, value_parser = image_size)]
    image_size: u32,
}

impl SynthArgs {
    pub fn run(self, output: Output) -> anyhow::Result<()> {
        let options = SynthOptions {
            side: self.image_size,
            train_per_person: self.train_per_person as usize,
            validate_per_person: self.validate_per_person as usize,
            seed: self.seed,
        };
        let written = write_synthetic_dataset(&self.dir, &options)?;
        let (train, validate) = (self.dir.join("train.csv"), self.dir.join("validate.csv"));
        match output {
            Output::Json => print_json(&serde_json::json!({
                "images": written, "train": train.display().to_string(), "validate": validate.display().to_string(),
            })),
            Output::Text => println!("wrote {written} images, {} and {}", train.display(), validate.display()),
        }
        Ok(())
    }
}

/// The sides the model takes, so a dataset is checked (or generated) as a job would load it.
fn image_size(text: &str) -> Result<u32, String> {
    bounded(text, widen(facetrain_worker::data::image::MODEL_SIDES))
}

fn per_person(text: &str) -> Result<u32, String> {
    bounded(text, widen(facetrain_worker::data::synth::PER_PERSON))
}
