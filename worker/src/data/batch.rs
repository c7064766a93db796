//! Batches: samples read through the dataset's cache, augmented straight into one CHW f32
//! buffer on rayon threads, and a prefetcher that prepares the next batches on its own thread
//! (reading included) while the model trains.

use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;

use crate::data::augment::{Jitter, augment_into, draw, sample_seed};
use crate::data::dataset::{Dataset, Sample};
use crate::data::image::RgbImage;
use crate::data::shard::{Pick, share};
use crate::error::{Error, Result};
use crate::job::AugmentSpec;

#[derive(Debug, Clone)]
pub struct Batch {
    /// `[len, 3, side, side]`, row-major.
    pub images: Vec<f32>,
    pub labels: Vec<usize>,
    pub picks: Vec<Pick>,
    /// Picks whose image was bad and skipped (`on_bad_row = "skip"`): consumed, not trained.
    pub skipped: Vec<Pick>,
    pub side: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Every pick this batch consumed, trained or skipped, for the sample ledger.
    pub fn consumed(&self) -> impl Iterator<Item = &Pick> {
        self.picks.iter().chain(&self.skipped)
    }
}

/// The rows of `picks`, to read.
pub fn rows_of(picks: &[Pick]) -> Vec<usize> {
    picks.iter().map(|p| p.row).collect()
}

/// Reads the samples of `picks` and builds their batch; `augment = None` for evaluation. For
/// threads outside the runtime.
pub fn build_batch(dataset: &Dataset, picks: Vec<Pick>, augment: Option<(&AugmentSpec, u64)>) -> Result<Batch> {
    let samples = dataset.samples_blocking(&rows_of(&picks))?;
    Ok(assemble(dataset, picks, samples, augment))
}

/// The batch of `picks` from their `samples` (read already): bad ones set aside.
pub fn assemble(
    dataset: &Dataset,
    picks: Vec<Pick>,
    samples: Vec<Sample>,
    augment: Option<(&AugmentSpec, u64)>,
) -> Batch {
    let mut kept = Vec::with_capacity(picks.len());
    let mut sources = Vec::with_capacity(picks.len());
    let mut skipped = Vec::new();
    for (pick, sample) in picks.into_iter().zip(samples) {
        match sample {
            Sample::Image(image) => {
                kept.push(pick);
                sources.push(image);
            }
            Sample::Bad => skipped.push(pick),
        }
    }
    let refs: Vec<&RgbImage> = sources.iter().map(|image| image.as_ref()).collect();
    let images = chw_images(&refs, |i| match augment {
        Some((spec, seed)) => draw(spec, sample_seed(&[seed, kept[i].epoch, kept[i].row as u64])),
        None => Jitter::identity(),
    });
    let labels = kept.iter().map(|p| dataset.label(p.row)).collect();
    Batch { images, labels, picks: kept, skipped, side: refs.first().map_or(0, |img| img.side) }
}

/// An unlabelled batch of `images` as they are (prediction).
pub fn unlabelled_batch(images: &[RgbImage]) -> Batch {
    let sources: Vec<&RgbImage> = images.iter().collect();
    Batch {
        images: chw_images(&sources, |_| Jitter::identity()),
        labels: vec![0; images.len()],
        picks: (0..images.len()).map(|row| Pick { position: row as u64, epoch: 0, row }).collect(),
        skipped: Vec::new(),
        side: images.first().map_or(0, |img| img.side),
    }
}

/// Writes each image, with the draws for its index, into one CHW f32 buffer, in parallel.
fn chw_images(sources: &[&RgbImage], draws: impl Fn(usize) -> Jitter + Sync) -> Vec<f32> {
    let side = sources.first().map_or(0, |img| img.side);
    let per_image = 3 * side * side;
    let mut images = vec![0.0f32; sources.len() * per_image];
    images.par_chunks_mut(per_image.max(1)).zip(sources.par_iter()).enumerate().for_each(|(i, (out, source))| {
        augment_into(&source.pixels, side, &draws(i), out);
    });
    images
}

/// Evaluation batches over `rows` of the dataset in row order, no augmentation.
pub fn sequential_batches(
    dataset: &Dataset,
    rows: Range<usize>,
    batch_size: usize,
) -> impl Iterator<Item = Result<Batch>> + '_ {
    let end = rows.end;
    rows.step_by(batch_size.max(1)).map(move |start| {
        let picks = (start..(start + batch_size).min(end)).map(|row| Pick { position: row as u64, epoch: 0, row });
        build_batch(dataset, picks.collect(), None)
    })
}

/// What a worker trains on: its share of each global batch from `cursor` on.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub cursor: u64,
    pub global_batch: usize,
    pub rank: usize,
    pub world: usize,
    pub augment: AugmentSpec,
    pub seed: u64,
}

/// Prepares batches `depth` steps ahead on a thread; dropping it stops the thread.
pub struct Prefetcher {
    receiver: Option<Receiver<Result<Batch>>>,
    thread: Option<JoinHandle<()>>,
}

impl Prefetcher {
    pub fn spawn(dataset: Arc<Dataset>, spec: StreamSpec, depth: usize) -> Result<Self> {
        let (sender, receiver) = sync_channel(depth.max(1));
        let thread = std::thread::Builder::new()
            .name("facetrain-prefetch".into())
            .spawn(move || produce(&dataset, spec, sender))
            .map_err(|e| Error::io("cannot start the batch-preparing thread", e))?;
        Ok(Self { receiver: Some(receiver), thread: Some(thread) })
    }

    /// The next batch; blocks while it is being prepared. A batch that could not be read (a
    /// bad image under `on_bad_row = "fail"`, a store that is gone) is that error; a thread that
    /// stopped (a panic while preparing a batch) is an error too, not a hang.
    pub fn next_batch(&mut self) -> Result<Batch> {
        self.receiver
            .as_ref()
            .and_then(|receiver| receiver.recv().ok())
            .unwrap_or_else(|| Err(Error::Training("the batch-preparing thread stopped".into())))
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        drop(self.receiver.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn produce(dataset: &Dataset, spec: StreamSpec, sender: SyncSender<Result<Batch>>) {
    let mut plan = dataset.plan(spec.seed);
    let mut cursor = spec.cursor;
    loop {
        let picks = plan.picks(cursor, spec.global_batch);
        let mine = picks[share(spec.global_batch, spec.rank, spec.world)].to_vec();
        let batch = build_batch(dataset, mine, Some((&spec.augment, spec.seed)));
        let failed = batch.is_err();
        if sender.send(batch).is_err() || failed {
            return;
        }
        cursor += spec.global_batch as u64;
    }
}
