//! Which samples each worker trains on at each step.
//!
//! The data cursor is the number of samples the job has consumed. Each epoch is a seeded
//! permutation of the training rows; global batch k covers cursor positions
//! `[k*B, (k+1)*B)`, running on into the next epoch's permutation at the end of one, so every
//! sample is seen exactly once per epoch whatever the worker count. A worker's share is a
//! contiguous slice of the global batch (sizes differ by at most one). Because the cursor alone
//! fixes the samples, a job resumes at the same sample on any number of workers.

use std::ops::Range;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::augment::sample_seed;

/// One sample of a global batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Absolute cursor position (unique over the whole job).
    pub position: u64,
    pub epoch: u64,
    /// Index into the training rows.
    pub row: usize,
}

#[derive(Debug, Clone)]
pub struct ShardPlan {
    rows: usize,
    seed: u64,
    cached: Option<(u64, Vec<u32>)>,
}

impl ShardPlan {
    pub fn new(rows: usize, seed: u64) -> Self {
        assert!(rows > 0, "a shard plan needs at least one row");
        assert!(rows <= u32::MAX as usize);
        Self { rows, seed, cached: None }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The order of the rows in `epoch`.
    pub fn permutation(&self, epoch: u64) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.rows as u32).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(sample_seed(&[self.seed, epoch, 0x5ba4])));
        order
    }

    /// The `len` samples starting at `cursor`.
    pub fn picks(&mut self, cursor: u64, len: usize) -> Vec<Pick> {
        (cursor..cursor + len as u64)
            .map(|position| {
                let epoch = position / self.rows as u64;
                let index = (position % self.rows as u64) as usize;
                Pick { position, epoch, row: self.epoch_order(epoch)[index] as usize }
            })
            .collect()
    }

    fn epoch_order(&mut self, epoch: u64) -> &[u32] {
        let cached = match self.cached.take() {
            Some((at, order)) if at == epoch => (at, order),
            _ => (epoch, self.permutation(epoch)),
        };
        &self.cached.insert(cached).1
    }
}

/// Worker `rank`'s slice of a batch of `len` samples split over `world` workers.
pub fn share(len: usize, rank: usize, world: usize) -> Range<usize> {
    assert!(rank < world, "rank {rank} out of range for {world} workers");
    let base = len / world;
    let extra = len % world;
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_once_per_epoch_for_any_worker_count() {
        for (rows, batch, world) in [(10, 3, 1), (10, 3, 2), (200, 100, 3), (7, 7, 7), (13, 5, 4)] {
            let mut plan = ShardPlan::new(rows, 9);
            let mut seen = vec![0u32; rows * 3];
            let steps = (rows * 3).div_ceil(batch);
            for step in 0..steps as u64 {
                let picks = plan.picks(step * batch as u64, batch);
                for rank in 0..world {
                    for pick in &picks[share(batch, rank, world)] {
                        if pick.epoch < 3 {
                            seen[pick.epoch as usize * rows + pick.row] += 1;
                        }
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "rows {rows} batch {batch} world {world}: {seen:?}");
        }
    }

    #[test]
    fn shares_cover_the_batch_contiguously() {
        for (len, world) in [(100, 1), (100, 2), (100, 3), (5, 4), (4, 4)] {
            let ranges: Vec<_> = (0..world).map(|r| share(len, r, world)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().unwrap().end, len);
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
            assert!(ranges.iter().all(|r| r.len().abs_diff(len / world) <= 1));
        }
    }

    proptest::proptest! {
        /// Any dataset size, batch, worker count and seed: every sample once per epoch, uneven
        /// tails included, and the shares of each batch partition it.
        #[test]
        fn exactly_once_per_epoch_for_any_shape(rows in 1usize..60, batch in 1usize..40, world in 1usize..8, seed: u64) {
            let world = world.min(batch);
            let mut plan = ShardPlan::new(rows, seed);
            let mut seen = vec![0u32; rows * 2];
            for step in 0..(rows * 2).div_ceil(batch) as u64 {
                let picks = plan.picks(step * batch as u64, batch);
                let mut covered = 0;
                for rank in 0..world {
                    let mine = &picks[share(batch, rank, world)];
                    covered += mine.len();
                    for pick in mine.iter().filter(|p| p.epoch < 2) {
                        seen[pick.epoch as usize * rows + pick.row] += 1;
                    }
                }
                proptest::prop_assert_eq!(covered, batch);
            }
            proptest::prop_assert!(seen.iter().all(|&n| n == 1));
        }
    }

    #[test]
    fn epochs_are_shuffled_differently_and_reproducibly() {
        let plan = ShardPlan::new(50, 1);
        assert_eq!(plan.permutation(0), ShardPlan::new(50, 1).permutation(0));
        assert_ne!(plan.permutation(0), plan.permutation(1));
        assert_ne!(plan.permutation(0), ShardPlan::new(50, 2).permutation(0));
    }
}
