//! Batches: augmented images written straight into one CHW f32 buffer, on rayon threads, and a
//! prefetcher that prepares the next batches on its own thread while the model trains.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;

use crate::data::augment::{Jitter, augment_into, draw, sample_seed};
use crate::data::dataset::Dataset;
use crate::data::image::RgbImage;
use crate::data::shard::{Pick, ShardPlan, share};
use crate::error::{Error, Result};
use crate::job::AugmentSpec;

#[derive(Debug, Clone)]
pub struct Batch {
    /// `[len, 3, side, side]`, row-major.
    pub images: Vec<f32>,
    pub labels: Vec<usize>,
    pub picks: Vec<Pick>,
    pub side: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Builds the batch of `picks`; `augment = None` for evaluation.
pub fn build_batch(dataset: &Dataset, picks: Vec<Pick>, augment: Option<(&AugmentSpec, u64)>) -> Batch {
    let sources: Vec<&RgbImage> = picks.iter().map(|p| &dataset.images[p.row]).collect();
    let images = chw_images(&sources, |i| match augment {
        Some((spec, seed)) => draw(spec, sample_seed(&[seed, picks[i].epoch, picks[i].row as u64])),
        None => Jitter::identity(),
    });
    let labels = picks.iter().map(|p| dataset.label(p.row)).collect();
    Batch { images, labels, picks, side: sources.first().map_or(0, |img| img.side) }
}

/// An unlabelled batch of `images` as they are (prediction).
pub fn unlabelled_batch(images: &[RgbImage]) -> Batch {
    let sources: Vec<&RgbImage> = images.iter().collect();
    Batch {
        images: chw_images(&sources, |_| Jitter::identity()),
        labels: vec![0; images.len()],
        picks: (0..images.len()).map(|row| Pick { position: row as u64, epoch: 0, row }).collect(),
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

/// Evaluation batches over the whole dataset in row order, no augmentation.
pub fn sequential_batches(dataset: &Dataset, batch_size: usize) -> impl Iterator<Item = Batch> + '_ {
    (0..dataset.len()).step_by(batch_size).map(move |start| {
        let end = (start + batch_size).min(dataset.len());
        let picks = (start..end).map(|row| Pick { position: row as u64, epoch: 0, row }).collect();
        build_batch(dataset, picks, None)
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
    receiver: Option<Receiver<Batch>>,
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

    /// The next batch; blocks while it is being prepared. The thread only stops first if it
    /// failed (a panic while preparing a batch): that is an error, not a hang.
    pub fn next_batch(&mut self) -> Result<Batch> {
        self.receiver
            .as_ref()
            .and_then(|receiver| receiver.recv().ok())
            .ok_or_else(|| Error::Training("the batch-preparing thread stopped".into()))
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

fn produce(dataset: &Dataset, spec: StreamSpec, sender: SyncSender<Batch>) {
    let mut plan = ShardPlan::new(dataset.len(), spec.seed);
    let mut cursor = spec.cursor;
    loop {
        let picks = plan.picks(cursor, spec.global_batch);
        let mine = picks[share(spec.global_batch, spec.rank, spec.world)].to_vec();
        let batch = build_batch(dataset, mine, Some((&spec.augment, spec.seed)));
        if sender.send(batch).is_err() {
            return;
        }
        cursor += spec.global_batch as u64;
    }
}
