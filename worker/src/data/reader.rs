//! Reading a dataset's images from storage as they are needed: the path checks, the reads with
//! bounded concurrency, the decoding on rayon threads, and the counts of what was read.
//!
//! A problem with one image (missing, too large, not an image, outside the dataset folder) is
//! that row's problem, for the dataset's `on_bad_row` policy; a store that cannot be reached is
//! an error of the whole read, which the caller may retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use rayon::prelude::*;

use crate::data::csv::Row;
use crate::data::image::{MAX_IMAGE_FILE_BYTES, RgbImage, decode_rgb};
use crate::error::{Error, Result};
use crate::storage::Location;

/// Concurrent object-store reads per call: enough to hide 20-50 ms of request latency behind a
/// batch's worth of reads.
const READ_CONCURRENCY: usize = 64;

/// What was read from storage, for metrics, benches and tests.
#[derive(Debug, Default)]
pub struct ReadCounts {
    pub objects: AtomicU64,
    pub bytes: AtomicU64,
    /// Images whose size differed from the model input and were resized (each decode counts).
    pub resized: AtomicU64,
}

impl ReadCounts {
    pub fn objects(&self) -> u64 {
        self.objects.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn resized(&self) -> u64 {
        self.resized.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct ImageReader {
    csv: Location,
    /// The CSV's folder with links resolved: images must lie inside it unless allowed.
    folder: Location,
    allow_outside: bool,
    side: usize,
    pub counts: Arc<ReadCounts>,
}

impl ImageReader {
    pub async fn new(csv: Location, side: usize, allow_outside: bool) -> Self {
        // Links resolved, so a link inside the folder that points outside it counts as outside.
        let folder = csv.folder().resolve_links().await;
        Self { csv, folder, allow_outside, side, counts: Arc::default() }
    }

    /// The images of `rows`, decoded to the model's input size: each one or what is wrong with
    /// it. Fails only when the store itself fails.
    pub async fn read(&self, rows: &[&Row]) -> Result<Vec<std::result::Result<RgbImage, String>>> {
        // The futures made up front: a stream mapping borrowed rows to futures is not Send.
        let reads: Vec<_> = rows.iter().map(|row| self.fetch(row)).collect();
        let fetched: Vec<Result<std::result::Result<Bytes, String>>> =
            futures::stream::iter(reads).buffered(READ_CONCURRENCY).collect().await;
        let fetched = fetched.into_iter().collect::<Result<Vec<_>>>()?;
        let (side, counts) = (self.side, self.counts.clone());
        tokio::task::spawn_blocking(move || {
            fetched
                .into_par_iter()
                .map(|bytes| {
                    let (image, decoded) = decode_rgb(&bytes?, side)?;
                    if decoded.resized {
                        counts.resized.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(image)
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Training(format!("image decoding panicked: {e}")))
    }

    /// One image's bytes, or the row's problem; `Err` when the store failed.
    async fn fetch(&self, row: &Row) -> Result<std::result::Result<Bytes, String>> {
        let location = match self.location(row).await {
            Ok(location) => location,
            Err(problem) => return Ok(Err(problem)),
        };
        match location.read_at_most(MAX_IMAGE_FILE_BYTES).await {
            Ok(bytes) => {
                self.counts.objects.fetch_add(1, Ordering::Relaxed);
                self.counts.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Ok(Ok(bytes))
            }
            // A local file system does not come and go: whatever fails there is the file's problem.
            Err(Error::Storage { message, .. }) if location.is_local() || is_the_rows_problem(&message) => {
                Ok(Err(message))
            }
            Err(other) => Err(other),
        }
    }

    /// Where a row's image is, refused when it leaves the dataset folder (after links are
    /// resolved) unless the job allows it.
    async fn location(&self, row: &Row) -> std::result::Result<Location, String> {
        let location = self.csv.sibling(&row.path).map_err(|e| match e {
            Error::Storage { message, .. } => message,
            other => other.to_string(),
        })?;
        if self.allow_outside {
            return Ok(location);
        }
        let resolved = location.resolve_links().await;
        if !self.folder.contains(&resolved) {
            let link = if resolved.to_string() == location.to_string() {
                String::new()
            } else {
                format!(" (a link to {resolved})")
            };
            return Err(format!(
                "image path `{}`{link} escapes the dataset folder {} (set dataset.allow_outside_paths = true to \
                 allow it)",
                row.path, self.folder
            ));
        }
        Ok(resolved)
    }
}

/// A read error that belongs to the image (it will not go away on retry), not to the store.
fn is_the_rows_problem(message: &str) -> bool {
    message == "not found" || message.contains("more than the limit")
}
