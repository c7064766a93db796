//! `facectl dataset pack CSV OUT`: a dataset's images packed into shards of a few MB with an
//! index (`OUT/index.csv`) that a job's `dataset.train` or `dataset.validate` points at instead of
//! the CSV. A worker then reads byte ranges of the shards, a few requests per step instead of
//! one per image. Images are copied unchanged (no re-encoding); each one is decoded once here so
//! a bad image is found now, not in the middle of a job. The index is written last, so an
//! interrupted pack leaves no index that names a shard that is not there.

use std::collections::VecDeque;

use bytes::Bytes;
use clap::Args;
use facetrain_worker::data::cache::CacheBudget;
use facetrain_worker::data::csv::RowError;
use facetrain_worker::data::dataset::{LoadOptions, open_dataset};
use facetrain_worker::data::image::{MODEL_SIDES, decode_rgb};
use facetrain_worker::data::pack::{DEFAULT_SHARD_MB, INDEX_FILE, INDEX_HEADER, Packer, pack_order, shard_name};
use facetrain_worker::error::Error;
use facetrain_worker::job::OnBadRow;
use facetrain_worker::storage::Location;
use rayon::prelude::*;
use tokio::task::JoinHandle;

use crate::args::{bounded, decimal, widen};
use crate::output::{Output, print_json};

/// Rows read (and checked) per round: bounds the image bytes held beside the open shard.
const CHUNK_ROWS: usize = 512;
/// Shard uploads in flight at once.
const WRITES_IN_FLIGHT: usize = 4;

#[derive(Args, Debug)]
pub struct PackArgs {
    /// The dataset CSV (`image_path,name,label`): a path, s3:// or gs:// URL.
    csv: String,
    /// Folder or object-store prefix for the shards and index.csv.
    out: String,
    /// Target shard size in MiB (a shard is closed once it holds at least this much), 0.01 to 1024.
    #[arg(long, default_value_t = DEFAULT_SHARD_MB as f64, value_parser = |t: &str| decimal(t, 0.01..=1024.0, "MiB"))]
    shard_mb: f64,
    /// Seed of the packing order (rows are shuffled once so that runs of packed rows mix people).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Side the images are checked at (as model.image_size).
    #[arg(long, default_value_t = 96, value_parser = |t: &str| bounded::<u64>(t, widen(MODEL_SIDES)))]
    image_size: u64,
    /// Leave bad rows out (and list them) instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
}

impl PackArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let on_bad_row = if self.skip_bad_rows { OnBadRow::Skip } else { OnBadRow::Fail };
        let side = self.image_size as usize;
        let options =
            LoadOptions { side, num_classes: None, on_bad_row, allow_outside_paths: false, cache: CacheBudget::new(0) };
        let dataset = open_dataset(&self.csv, &options).await?;
        let out = Location::parse(&self.out)?;
        let mut index = csv::Writer::from_writer(Vec::new());
        index.write_record(INDEX_HEADER)?;
        let mut packer = Packer::new((self.shard_mb * (1u64 << 20) as f64) as usize);
        let mut bad: Vec<RowError> = dataset.skipped.clone();
        let mut writes: VecDeque<JoinHandle<anyhow::Result<()>>> = VecDeque::new();
        let (mut packed, mut bytes, mut shards) = (0usize, 0u64, 0usize);
        for chunk in pack_order(dataset.len(), self.seed).chunks(CHUNK_ROWS) {
            let read = dataset.image_bytes(chunk).await?;
            let checked = tokio::task::spawn_blocking(move || {
                read.into_par_iter()
                    .map(|bytes| bytes.and_then(|bytes| decode_rgb(&bytes, side).map(|_| bytes)))
                    .collect::<Vec<_>>()
            })
            .await?;
            for (&row, result) in chunk.iter().zip(checked) {
                let row = &dataset.rows[row];
                let image = match result {
                    Ok(image) => image,
                    Err(problem) => {
                        let error = row.bad_image(&problem);
                        if !self.skip_bad_rows {
                            return Err(
                                Error::BadRow { file: self.csv, line: error.line, message: error.message }.into()
                            );
                        }
                        bad.push(error);
                        continue;
                    }
                };
                let (placement, full) = packer.add(&image);
                let name = shard_name(placement.shard);
                let fields = [name, placement.offset.to_string(), image.len().to_string()];
                index.write_record(
                    fields.iter().map(String::as_str).chain([row.name.as_str(), &row.label.to_string()]),
                )?;
                (packed, bytes) = (packed + 1, bytes + image.len() as u64);
                if let Some((shard, data)) = full {
                    shards += 1;
                    writes.push_back(write(&out, shard, data)?);
                    if writes.len() >= WRITES_IN_FLIGHT
                        && let Some(oldest) = writes.pop_front()
                    {
                        oldest.await??;
                    }
                }
            }
        }
        if let Some((shard, data)) = packer.finish() {
            shards += 1;
            writes.push_back(write(&out, shard, data)?);
        }
        for pending in writes {
            pending.await??;
        }
        anyhow::ensure!(packed > 0, "{}: every row was bad; nothing to pack", self.csv);
        let index_location = out.child(INDEX_FILE)?;
        index_location.write(Bytes::from(index.into_inner()?)).await?;
        bad.sort_by_key(|e| e.line);
        let summary = serde_json::json!({
            "csv": self.csv, "index": index_location.to_string(), "rows": packed, "shards": shards,
            "image_bytes": bytes, "shard_mb": self.shard_mb, "seed": self.seed,
            "bad_rows": bad.iter().map(|e| serde_json::json!({"line": e.line, "problem": e.message})).collect::<Vec<_>>(),
        });
        match output {
            Output::Json => print_json(&summary),
            Output::Text => {
                println!(
                    "packed {packed} images ({:.1} MB) into {shards} shards; index {index_location} (point \
                     dataset.train or dataset.validate at it)",
                    bytes as f64 / 1e6
                );
                for e in &bad {
                    println!("  bad row {}:{}: {}", self.csv, e.line, e.message);
                }
            }
        }
        Ok(())
    }
}

/// Starts writing one shard.
fn write(out: &Location, shard: usize, data: Vec<u8>) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let location = out.child(&shard_name(shard))?;
    Ok(tokio::spawn(async move { Ok(location.write(Bytes::from(data)).await?) }))
}
