//! A dataset: its CSV read and checked row by row, and its images read from storage as they
//! are needed, through a decoded-image cache bounded by the job's budget (`dataset.cache_mb`).
//!
//! Opening reads only the CSV. [`Dataset::preload`] reads and decodes every image up front (in
//! parallel) and keeps them: jobs whose datasets fit the budget do that, so a bad image stops the
//! job before it trains rather than hours in, and each image is decoded once. Larger datasets
//! stream: a worker reads only the samples it trains, and a bad image is met when it is read
//! (the `on_bad_row` policy applies there, with the CSV line).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;

use crate::data::cache::{CacheBudget, ImageCache, decoded_bytes};
use crate::data::csv::{self, CsvParser, MAX_LINE_BYTES, ParsedCsv, Row, RowError};
use crate::data::image::RgbImage;
use crate::data::lines::LineSplitter;
use crate::data::reader::{ImageReader, ReadCounts, RowResult};
use crate::data::shard::{PACKED_RUN_ROWS, ShardPlan};
use crate::error::{Error, Result};
use crate::job::OnBadRow;
use crate::storage::Location;

/// Rows read and decoded per call while preloading: bounds the undecoded bytes held at once.
const PRELOAD_CHUNK: usize = 2048;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub side: usize,
    pub num_classes: Option<usize>,
    pub on_bad_row: OnBadRow,
    pub allow_outside_paths: bool,
    /// The decoded-image budget this dataset's cache draws on (shared by a job's datasets).
    pub cache: Arc<CacheBudget>,
}

/// One sample's image, or the mark of a bad one skipped under `on_bad_row = "skip"`.
#[derive(Debug, Clone)]
pub enum Sample {
    Image(Arc<RgbImage>),
    Bad,
}

#[derive(Debug)]
pub struct Dataset {
    /// Where the CSV came from, for messages.
    pub source: String,
    pub rows: Vec<Row>,
    pub num_classes: usize,
    pub class_names: Vec<String>,
    /// Rows of the CSV dropped under `on_bad_row = "skip"`, with the reason.
    pub skipped: Vec<RowError>,
    on_bad_row: OnBadRow,
    side: usize,
    reader: ImageReader,
    cache: ImageCache,
    /// Rows whose image turned out bad (under skip), with the reason: not read again.
    bad: Mutex<BTreeMap<usize, String>>,
    handle: tokio::runtime::Handle,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The order a job draws this dataset's rows in: packed data in runs of consecutive rows
    /// (few reads per step), other data row by row.
    pub fn plan(&self, seed: u64) -> ShardPlan {
        ShardPlan::in_runs(self.len(), seed, if self.is_packed() { PACKED_RUN_ROWS } else { 1 })
    }

    /// Every row is a byte range of a shard (`facectl dataset pack`).
    pub fn is_packed(&self) -> bool {
        self.rows.iter().all(|row| row.range.is_some())
    }

    pub fn label(&self, index: usize) -> usize {
        self.rows[index].label
    }

    /// Labels below `num_classes` with no row (see [`csv::labels_without_rows`]).
    pub fn labels_without_rows(&self) -> Vec<usize> {
        csv::labels_without_rows(&self.rows, self.num_classes)
    }

    /// Rows per class, less the rows whose image is known to be bad.
    pub fn count_per_class(&self) -> Vec<usize> {
        let bad = self.bad.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = vec![0; self.num_classes];
        self.rows.iter().enumerate().filter(|(i, _)| !bad.contains_key(i)).for_each(|(_, row)| counts[row.label] += 1);
        counts
    }

    /// Rows not known to be bad.
    pub fn usable(&self) -> usize {
        self.len() - self.bad.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Images found bad so far (under skip), by CSV line.
    pub fn bad_images(&self) -> Vec<RowError> {
        let bad = self.bad.lock().unwrap_or_else(|e| e.into_inner());
        bad.iter().map(|(&row, message)| RowError { line: self.rows[row].line, message: message.clone() }).collect()
    }

    /// What this dataset read from storage so far.
    pub fn read_counts(&self) -> &ReadCounts {
        &self.reader.counts
    }

    /// Images held in the cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Bytes held by the caches on this dataset's budget (a job's datasets share one).
    pub fn cache_bytes(&self) -> u64 {
        self.cache.budget_used()
    }

    /// The cache bytes every image of this dataset would take.
    pub fn decoded_bytes(&self) -> u64 {
        self.len() as u64 * decoded_bytes(self.side)
    }

    /// The samples of `rows`: from the cache, else read and decoded (and kept if the budget has
    /// room). A bad image fails the call under `on_bad_row = "fail"` (naming the CSV line) and is
    /// a [`Sample::Bad`] under skip; a store that cannot be reached fails it either way.
    pub async fn samples(&self, rows: &[usize]) -> Result<Vec<Sample>> {
        let mut samples: Vec<Sample> = Vec::with_capacity(rows.len());
        let mut missing = Vec::new();
        for (i, &row) in rows.iter().enumerate() {
            match self.known(row) {
                Some(sample) => samples.push(sample),
                None => {
                    missing.push(i);
                    samples.push(Sample::Bad);
                }
            }
        }
        let to_read: Vec<&Row> = missing.iter().map(|&i| &self.rows[rows[i]]).collect();
        let read = self.reader.read(&to_read).await?;
        for (i, image) in missing.into_iter().zip(read) {
            let row = rows[i];
            samples[i] = match image {
                Ok(image) => {
                    let image = Arc::new(image);
                    self.cache.admit(row, &image);
                    Sample::Image(image)
                }
                Err(problem) => self.bad_image(row, problem)?,
            };
        }
        Ok(samples)
    }

    /// The undecoded bytes of `rows`' images, each one or what is wrong with it (for tools that
    /// copy images, such as the packer); the cache and the bad-row policy are not involved.
    pub async fn image_bytes(&self, rows: &[usize]) -> Result<Vec<RowResult<Bytes>>> {
        let rows: Vec<&Row> = rows.iter().map(|&row| &self.rows[row]).collect();
        self.reader.read_bytes(&rows).await
    }

    /// [`Dataset::samples`] from synchronous code: the training and batch threads, or a task of
    /// a multi-threaded runtime (which gives up its thread meanwhile).
    pub fn samples_blocking(&self, rows: &[usize]) -> Result<Vec<Sample>> {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| self.handle.block_on(self.samples(rows))),
            Err(_) => self.handle.block_on(self.samples(rows)),
        }
    }

    /// Reads every image now and keeps them (the budget permitting): the whole dataset checked
    /// before anything trains on it.
    pub async fn preload(&self) -> Result<()> {
        let rows: Vec<usize> = (0..self.len()).collect();
        for chunk in rows.chunks(PRELOAD_CHUNK) {
            self.samples(chunk).await?;
        }
        if self.bad.lock().unwrap_or_else(|e| e.into_inner()).len() == self.len() {
            return Err(Error::BadDataset {
                file: self.source.clone(),
                message: "empty dataset: every image was bad and skipped".into(),
            });
        }
        Ok(())
    }

    fn known(&self, row: usize) -> Option<Sample> {
        if let Some(image) = self.cache.get(row) {
            return Some(Sample::Image(image));
        }
        self.bad.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&row).then_some(Sample::Bad)
    }

    fn bad_image(&self, row: usize, problem: String) -> Result<Sample> {
        let RowError { line, message } = self.rows[row].bad_image(&problem);
        match self.on_bad_row {
            OnBadRow::Fail => Err(Error::BadRow { file: self.source.clone(), line, message }),
            OnBadRow::Skip => {
                tracing::warn!(csv = %self.source, line, "{message}: skipped (on_bad_row = \"skip\")");
                self.bad.lock().unwrap_or_else(|e| e.into_inner()).insert(row, message);
                Ok(Sample::Bad)
            }
        }
    }
}

/// Reads `csv_url`'s rows (checked as they arrive); no image is read yet.
pub async fn open_dataset(csv_url: &str, options: &LoadOptions) -> Result<Dataset> {
    let csv_location = Location::parse(csv_url)?;
    let parsed = read_csv(&csv_location, csv_url, options).await?;
    let rows = parsed.rows;
    if rows.is_empty() {
        return Err(Error::BadDataset {
            file: csv_url.into(),
            message: "empty dataset: every row was bad and skipped".into(),
        });
    }
    let num_classes = options.num_classes.unwrap_or_else(|| rows.iter().map(|r| r.label).max().unwrap_or(0) + 1);
    let class_names = csv::class_names(&rows, num_classes);
    let reader = ImageReader::new(csv_location, options.side, options.allow_outside_paths).await;
    let dataset = Dataset {
        source: csv_url.into(),
        rows,
        num_classes,
        class_names,
        skipped: parsed.skipped,
        on_bad_row: options.on_bad_row,
        side: options.side,
        reader,
        cache: ImageCache::new(options.cache.clone()),
        bad: Mutex::default(),
        handle: tokio::runtime::Handle::current(),
    };
    // Logged here so every caller (dataset check, training start, eval) shows it.
    let gaps = dataset.labels_without_rows();
    if !gaps.is_empty() {
        tracing::warn!(csv = csv_url, labels = %list(&gaps), num_classes, "{LABEL_GAP_WARNING}");
    }
    Ok(dataset)
}

/// Opens `csv_url` and reads every image now: the whole dataset checked (for `dataset check`,
/// `eval` and tools that read a dataset once).
pub async fn load_dataset(csv_url: &str, options: &LoadOptions) -> Result<Dataset> {
    let mut dataset = open_dataset(csv_url, options).await?;
    dataset.preload().await?;
    // Every bad row, of the CSV or its image, in one list by line.
    dataset.skipped.extend(dataset.bad_images());
    dataset.skipped.sort_by_key(|e| e.line);
    Ok(dataset)
}

/// The CSV, streamed: each line is checked as it arrives, so the first bad line of a huge file
/// is reported without reading on, and memory holds one line at a time beside the rows.
async fn read_csv(location: &Location, csv_url: &str, options: &LoadOptions) -> Result<ParsedCsv> {
    let mut parser = CsvParser::new(csv_url, options.num_classes, options.on_bad_row)?;
    let mut lines = LineSplitter::new(MAX_LINE_BYTES);
    let mut chunks = std::pin::pin!(location.read_chunks().await?);
    while let Some(chunk) = chunks.next().await {
        lines.push(&chunk?, |line| parser.push(line))?;
    }
    lines.finish(|line| parser.push(line))?;
    parser.finish()
}

/// What a label with no rows means, for the warning.
pub const LABEL_GAP_WARNING: &str = "labels with no rows: the model gets output classes it is never trained or \
                                     checked on (labels should be 0..N-1 without gaps)";

/// `1, 2, 5` (the first 20, then how many more), for messages.
pub fn list(labels: &[usize]) -> String {
    let mut shown: Vec<String> = labels.iter().take(20).map(usize::to_string).collect();
    if labels.len() > shown.len() {
        shown.push(format!("and {} more", labels.len() - shown.len()));
    }
    shown.join(", ")
}

/// Labels whose names differ between a dataset and a checkpoint's classes (label, in the
/// dataset, in the checkpoint): evaluating one person's photos against another's class.
pub fn class_name_mismatches(dataset: &[String], checkpoint: &[String]) -> Vec<(usize, String, String)> {
    dataset
        .iter()
        .zip(checkpoint)
        .enumerate()
        .filter(|(_, (ours, theirs))| !ours.is_empty() && !theirs.is_empty() && ours != theirs)
        .map(|(label, (ours, theirs))| (label, ours.clone(), theirs.clone()))
        .collect()
}

/// Checks that a validation set names its classes as the training set does.
pub fn check_same_classes(train: &Dataset, validate: &Dataset) -> Result<()> {
    for row in &validate.rows {
        let known = train.class_names.get(row.label).map(String::as_str);
        match known {
            Some(name) if name == row.name || name.is_empty() => {}
            Some(name) => {
                return Err(Error::BadRow {
                    file: validate.source.clone(),
                    line: row.line,
                    message: format!(
                        "label {} is `{}` here but `{name}` in the training set {}",
                        row.label, row.name, train.source
                    ),
                });
            }
            None => {
                return Err(Error::BadRow {
                    file: validate.source.clone(),
                    line: row.line,
                    message: format!(
                        "label {} out of range: the training set has {} classes",
                        row.label, train.num_classes
                    ),
                });
            }
        }
    }
    Ok(())
}
