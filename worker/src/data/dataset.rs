//! A dataset in memory: the CSV read through object storage, every image fetched, decoded and
//! validated up front (in parallel), so a bad row stops the job before it trains rather than
//! hours in. Decoded images are kept: this dataset decodes once, not once per epoch.

use futures::{StreamExt, TryStreamExt};
use rayon::prelude::*;

use crate::data::csv::{self, CsvParser, MAX_LINE_BYTES, ParsedCsv, Row, RowError};
use crate::data::image::{MAX_IMAGE_FILE_BYTES, RgbImage, decode_rgb};
use crate::data::lines::LineSplitter;
use crate::error::{Error, Result};
use crate::job::OnBadRow;
use crate::storage::Location;

/// A row with its decoded image (and whether it was resized), or what is wrong with it.
type DecodedRow = (Row, std::result::Result<(RgbImage, bool), String>);

/// Concurrent object-store reads while loading.
const FETCH_CONCURRENCY: usize = 32;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub side: usize,
    pub num_classes: Option<usize>,
    pub on_bad_row: OnBadRow,
    pub allow_outside_paths: bool,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where the CSV came from, for messages.
    pub source: String,
    pub rows: Vec<Row>,
    pub images: Vec<RgbImage>,
    pub num_classes: usize,
    pub class_names: Vec<String>,
    /// Bad rows dropped under `on_bad_row = "skip"`, with the reason.
    pub skipped: Vec<RowError>,
    /// Images whose size differed from the model input and were resized.
    pub resized: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn label(&self, index: usize) -> usize {
        self.rows[index].label
    }

    /// Labels below `num_classes` with no row (see [`csv::labels_without_rows`]).
    pub fn labels_without_rows(&self) -> Vec<usize> {
        csv::labels_without_rows(&self.rows, self.num_classes)
    }

    pub fn count_per_class(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        self.rows.iter().for_each(|row| counts[row.label] += 1);
        counts
    }
}

pub async fn load_dataset(csv_url: &str, options: &LoadOptions) -> Result<Dataset> {
    let csv_location = Location::parse(csv_url)?;
    let parsed = read_csv(&csv_location, csv_url, options).await?;
    let mut skipped = parsed.skipped;
    // Links resolved, so a link inside the folder that points outside it counts as outside.
    let dataset_folder = csv_location.folder().resolve_links().await;

    let fetched: Vec<(Row, std::result::Result<bytes::Bytes, String>)> = futures::stream::iter(parsed.rows)
        .map(|row| {
            let (csv_location, dataset_folder) = (&csv_location, &dataset_folder);
            async move {
                let bytes = match image_location(csv_location, dataset_folder, &row, options.allow_outside_paths).await
                {
                    Ok(location) => location.read_at_most(MAX_IMAGE_FILE_BYTES).await.map_err(|e| e.to_string()),
                    Err(message) => Err(message),
                };
                Ok::<_, Error>((row, bytes))
            }
        })
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;

    let side = options.side;
    let decoded: Vec<DecodedRow> = tokio::task::spawn_blocking(move || {
        fetched
            .into_par_iter()
            .map(|(row, bytes)| {
                let image = bytes.and_then(|b| decode_rgb(&b, side).map(|(img, info)| (img, info.resized)));
                (row, image)
            })
            .collect()
    })
    .await
    .map_err(|e| Error::Training(format!("image decoding panicked: {e}")))?;

    let mut rows = Vec::with_capacity(decoded.len());
    let mut images = Vec::with_capacity(decoded.len());
    let mut resized = 0;
    for (row, image) in decoded {
        match image {
            Ok((image, was_resized)) => {
                resized += usize::from(was_resized);
                rows.push(row);
                images.push(image);
            }
            Err(message) => {
                let message = format!("image `{}`: {message}", row.path);
                match options.on_bad_row {
                    OnBadRow::Fail => return Err(Error::BadRow { file: csv_url.into(), line: row.line, message }),
                    OnBadRow::Skip => skipped.push(RowError { line: row.line, message }),
                }
            }
        }
    }
    if rows.is_empty() {
        return Err(Error::BadDataset {
            file: csv_url.into(),
            message: "empty dataset: every image was bad and skipped".into(),
        });
    }
    let num_classes = options.num_classes.unwrap_or_else(|| rows.iter().map(|r| r.label).max().unwrap_or(0) + 1);
    let class_names = csv::class_names(&rows, num_classes);
    skipped.sort_by_key(|e| e.line);
    let dataset = Dataset { source: csv_url.into(), rows, images, num_classes, class_names, skipped, resized };
    // Logged here so every caller (dataset check, training start, eval) shows it.
    let gaps = dataset.labels_without_rows();
    if !gaps.is_empty() {
        tracing::warn!(csv = csv_url, labels = %list(&gaps), num_classes, "{LABEL_GAP_WARNING}");
    }
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

/// Where a row's image is, refused when it leaves the dataset folder (after links are resolved)
/// unless the job allows it.
async fn image_location(
    csv: &Location,
    dataset_folder: &Location,
    row: &Row,
    allow_outside: bool,
) -> std::result::Result<Location, String> {
    let location = csv.sibling(&row.path).map_err(|e| match e {
        Error::Storage { message, .. } => message,
        other => other.to_string(),
    })?;
    if allow_outside {
        return Ok(location);
    }
    let resolved = location.resolve_links().await;
    if !dataset_folder.contains(&resolved) {
        let link = if resolved.to_string() == location.to_string() {
            String::new()
        } else {
            format!(" (a link to {resolved})")
        };
        return Err(format!(
            "image path `{}`{link} escapes the dataset folder {dataset_folder} (set dataset.allow_outside_paths = true \
             to allow it)",
            row.path
        ));
    }
    Ok(resolved)
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
