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
use crate::data::span::{Span, spans};
use crate::error::{Error, Result};
use crate::storage::{Location, RANGE_PAST_END};

/// One row's result: its bytes or image, or what is wrong with it (the row's problem).
pub type RowResult<T> = std::result::Result<T, String>;

/// Concurrent object-store reads per call: enough to hide 20-50 ms of request latency behind a
/// batch's worth of reads.
const READ_CONCURRENCY: usize = 64;

/// What was read from storage, for metrics, benches and tests.
#[derive(Debug, Default)]
pub struct ReadCounts {
    /// Read requests: whole objects, or byte ranges of packed shards.
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
    /// Images whose size differed from the model input and were resized (each decode counts).
    pub resized: AtomicU64,
}

impl ReadCounts {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
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
    pub async fn read(&self, rows: &[&Row]) -> Result<Vec<RowResult<RgbImage>>> {
        let fetched = self.read_bytes(rows).await?;
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

    /// The undecoded bytes of `rows`' images, in order: each one or what is wrong with it.
    /// Touching ranges of packed rows are fetched as one read (see [`spans`]).
    pub async fn read_bytes(&self, rows: &[&Row]) -> Result<Vec<RowResult<Bytes>>> {
        let spans = spans(rows);
        // The futures made up front: a stream mapping borrowed rows to futures is not Send.
        let reads: Vec<_> = spans.iter().map(|span| self.fetch(rows, span)).collect();
        let fetched: Vec<Result<Vec<RowResult<Bytes>>>> =
            futures::stream::iter(reads).buffered(READ_CONCURRENCY).collect().await;
        let mut out: Vec<RowResult<Bytes>> = vec![Err(String::new()); rows.len()];
        for (span, bytes) in spans.iter().zip(fetched) {
            for (&member, bytes) in span.members.iter().zip(bytes?) {
                out[member] = bytes;
            }
        }
        Ok(out)
    }

    /// One read's bytes, split among the rows it serves, or the rows' problem; `Err` when the
    /// store failed.
    async fn fetch(&self, rows: &[&Row], span: &Span) -> Result<Vec<RowResult<Bytes>>> {
        let every = |problem: String| Ok(vec![Err(problem); span.members.len()]);
        let location = match self.location(rows[span.members[0]]).await {
            Ok(location) => location,
            Err(problem) => return every(problem),
        };
        let read = match &span.range {
            None => location.read_at_most(MAX_IMAGE_FILE_BYTES).await,
            Some(range) => location.read_range(range.clone()).await,
        };
        match read {
            Ok(bytes) => {
                self.counts.requests.fetch_add(1, Ordering::Relaxed);
                self.counts.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                if span.range.is_none() {
                    return Ok(vec![Ok(bytes)]);
                }
                // read_range returned exactly the span's bytes, so every part lies inside them.
                Ok(span.parts.iter().map(|part| Ok(bytes.slice(part.clone()))).collect())
            }
            // A local file system does not come and go: whatever fails there is the file's problem.
            Err(Error::Storage { message, .. }) if location.is_local() || is_the_rows_problem(&message) => {
                every(message)
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
    message == "not found" || message.contains("more than the limit") || message.contains(RANGE_PAST_END)
}
