//! A dataset in memory: the CSV read through object storage, every image fetched, decoded and
//! validated up front (in parallel), so a bad row stops the job before it trains rather than
//! hours in. Decoded images are kept: this dataset decodes once, not once per epoch.

use futures::{StreamExt, TryStreamExt};
use rayon::prelude::*;

use crate::data::csv::{self, Row, RowError};
use crate::data::image::{RgbImage, decode_rgb};
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

    pub fn count_per_class(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        self.rows.iter().for_each(|row| counts[row.label] += 1);
        counts
    }
}

pub async fn load_dataset(csv_url: &str, options: &LoadOptions) -> Result<Dataset> {
    let csv_location = Location::parse(csv_url)?;
    let text = csv_location.read().await?;
    let text = std::str::from_utf8(&text)
        .map_err(|e| Error::BadDataset { file: csv_url.into(), message: format!("not UTF-8 text: {e}") })?;
    let parsed = csv::parse_rows(csv_url, text, options.num_classes, options.on_bad_row)?;
    let mut skipped = parsed.skipped;

    let fetched: Vec<(Row, std::result::Result<bytes::Bytes, String>)> = futures::stream::iter(parsed.rows)
        .map(|row| {
            let location = image_location(&csv_location, &row, options.allow_outside_paths);
            async move {
                let bytes = match location {
                    Ok(location) => location.read().await.map_err(|e| e.to_string()),
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
    Ok(Dataset { source: csv_url.into(), rows, images, num_classes, class_names, skipped, resized })
}

fn image_location(csv: &Location, row: &Row, allow_outside: bool) -> std::result::Result<Location, String> {
    let location = csv.sibling(&row.path).map_err(|e| e.to_string())?;
    if !allow_outside && !csv.folder_contains(&location) {
        return Err(format!(
            "image path `{}` escapes the dataset folder (set dataset.allow_outside_paths = true to allow it)",
            row.path
        ));
    }
    Ok(location)
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
