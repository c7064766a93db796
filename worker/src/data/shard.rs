//! Which samples each worker trains on at each step.
//!
//! The data cursor is the number of samples the job has consumed. Each epoch is a seeded
//! permutation of the training rows; global batch k covers cursor positions
//! `[k*B, (k+1)*B)`, running on into the next epoch's permutation at the end of one, so every
//! sample is seen exactly once per epoch whatever the worker count. A worker's share is a
//! contiguous slice of the global batch (sizes differ by at most one). Because the cursor alone
//! fixes the samples, a job resumes at the same sample on any number of workers.
//!
//! Packed data (`facectl dataset pack`) is shuffled in runs instead: the epoch's order is the
//! rows cut into runs of [`PACKED_RUN_ROWS`] consecutive packed rows, the runs in a seeded order.
//! A run's images lie end to end in one shard, so a worker's share of a step is a few byte-range
//! reads rather than one request per image. The packer shuffled the rows once, so a run is a
//! random group of faces, and the cuts move each epoch (a seeded shift), so the groups that share
//! a batch change from epoch to epoch. The order is still a permutation per epoch, a function of
//! seed and epoch alone: every sample once per epoch, on any number of workers.

use std::ops::Range;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
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

/// Rows per run of packed data: a share of 50 images is ~5-6 reads instead of 50, and a batch
/// of 100 still mixes 10 random groups.
pub const PACKED_RUN_ROWS: usize = 10;

#[derive(Debug, Clone)]
pub struct ShardPlan {
    rows: usize,
    seed: u64,
    /// Rows per run (1: every row on its own, the plain shuffle).
    run: usize,
    cached: Option<(u64, Vec<u32>)>,
}

impl ShardPlan {
    pub fn new(rows: usize, seed: u64) -> Self {
        Self::in_runs(rows, seed, 1)
    }

    /// A plan that shuffles runs of `run` consecutive rows (packed data).
    pub fn in_runs(rows: usize, seed: u64, run: usize) -> Self {
        assert!(rows > 0, "a shard plan needs at least one row");
        assert!(rows <= u32::MAX as usize);
        Self { rows, seed, run: run.max(1), cached: None }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The order of the rows in `epoch`.
    pub fn permutation(&self, epoch: u64) -> Vec<u32> {
        let mut rng = ChaCha8Rng::seed_from_u64(sample_seed(&[self.seed, epoch, 0x5ba4]));
        let rows = self.rows as u32;
        if self.run == 1 {
            let mut order: Vec<u32> = (0..rows).collect();
            order.shuffle(&mut rng);
            return order;
        }
        let run = self.run as u32;
        let shift = rng.random_range(0..run);
        let cuts: Vec<u32> = std::iter::once(0)
            .chain((shift..rows).step_by(self.run).filter(|&cut| cut > 0))
            .chain(std::iter::once(rows))
            .collect();
        let mut runs: Vec<(u32, u32)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
        runs.shuffle(&mut rng);
        runs.into_iter().flat_map(|(start, end)| start..end).collect()
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
        /// Any dataset size, batch, worker count and seed, row by row (run 1, half the cases) or
        /// in runs as packed data is: every sample once per epoch, uneven tails included, and the
        /// shares of each batch partition it.
        #[test]
        fn exactly_once_per_epoch_for_any_shape(
            rows in 1usize..80,
            batch in 1usize..40,
            run in proptest::prop_oneof![proptest::strategy::Just(1usize), 2usize..12],
            world in 1usize..8,
            seed: u64,
        ) {
            let world = world.min(batch);
            let mut plan = ShardPlan::in_runs(rows, seed, run);
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
    fn packed_plans_draw_runs_of_consecutive_rows_cut_differently_each_epoch() {
        let plan = ShardPlan::in_runs(1000, 3, PACKED_RUN_ROWS);
        let (first, second) = (plan.permutation(0), plan.permutation(1));
        for order in [&first, &second] {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "a permutation");
            // Breaks between consecutive rows: one between runs, less the few runs that land after
            // their neighbour by chance; a row-level shuffle has ~999.
            let breaks = order.windows(2).filter(|w| w[1] != w[0] + 1).count();
            assert!((94..=101).contains(&breaks), "{breaks} breaks");
        }
        assert_ne!(first, second);
        let cuts = |order: &[u32]| -> std::collections::BTreeSet<u32> {
            order.windows(2).filter(|w| w[1] != w[0] + 1).map(|w| w[1]).collect()
        };
        assert_ne!(cuts(&first), cuts(&second), "the runs are cut at other rows in another epoch");
        assert_eq!(first, ShardPlan::in_runs(1000, 3, PACKED_RUN_ROWS).permutation(0), "reproducible");
    }

    #[test]
    fn epochs_are_shuffled_differently_and_reproducibly() {
        let plan = ShardPlan::new(50, 1);
        assert_eq!(plan.permutation(0), ShardPlan::new(50, 1).permutation(0));
        assert_ne!(plan.permutation(0), plan.permutation(1));
        assert_ne!(plan.permutation(0), ShardPlan::new(50, 2).permutation(0));
    }
}
