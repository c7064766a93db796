//! Reading ahead for a distributed worker. The plan is deterministic, so a worker that trained
//! the step at `cursor` as rank r of w knows its next picks, if the group stays as it is, and
//! reads them while it computes. When the group changes (a member joined or left, a rewind), the
//! step's picks differ from the ones read ahead: those reads are dropped and the step reads its
//! own. At most `depth` steps are read ahead, so the memory they hold is bounded.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::data::batch::rows_of;
use crate::data::dataset::{Dataset, Sample};
use crate::data::shard::{Pick, ShardPlan, share};
use crate::error::{Error, Result};

/// The step a worker expects to train: where it starts and this worker's place in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepKey {
    pub cursor: u64,
    pub rank: usize,
    pub world: usize,
}

type Reading = JoinHandle<Result<Vec<Sample>>>;

pub struct Lookahead {
    dataset: Arc<Dataset>,
    plan: ShardPlan,
    global_batch: usize,
    depth: usize,
    /// The cursor after the job's last step: nothing past it is read.
    end: u64,
    pending: VecDeque<(StepKey, Vec<Pick>, Reading)>,
}

impl Lookahead {
    /// Reads ahead for a job of `max_steps` global batches of `global_batch`.
    pub fn new(dataset: Arc<Dataset>, seed: u64, (global_batch, max_steps): (usize, u64), depth: usize) -> Self {
        let plan = dataset.plan(seed);
        let end = max_steps.saturating_mul(global_batch as u64);
        Self { dataset, plan, global_batch, depth, end, pending: VecDeque::new() }
    }

    /// This worker's picks for `key`, by the plan.
    pub fn picks(&mut self, key: StepKey) -> Vec<Pick> {
        let picks = self.plan.picks(key.cursor, self.global_batch);
        picks[share(self.global_batch, key.rank, key.world)].to_vec()
    }

    /// The samples of `picks` for the step `key`: the reading started ahead for it when it is
    /// the same, else read now. Then starts reading the next `depth` steps.
    pub async fn take(&mut self, key: StepKey, picks: &[Pick]) -> Result<Vec<Sample>> {
        let mut ready = None;
        while let Some((ahead, ahead_picks, reading)) = self.pending.pop_front() {
            if ahead == key && ahead_picks == picks {
                ready = Some(reading);
                break;
            }
            reading.abort();
        }
        let samples = match ready {
            Some(reading) => reading.await.map_err(|e| Error::Training(format!("reading ahead failed: {e}")))?,
            None => {
                self.abort_all();
                self.dataset.samples(&rows_of(picks)).await
            }
        };
        self.read_ahead(key);
        samples
    }

    fn read_ahead(&mut self, key: StepKey) {
        let batch = self.global_batch as u64;
        let last = self.pending.back().map_or(key.cursor, |(ahead, ..)| ahead.cursor);
        for step in 1..=self.depth as u64 {
            let next = StepKey { cursor: key.cursor + step * batch, ..key };
            if next.cursor <= last {
                continue;
            }
            if next.cursor >= self.end {
                break;
            }
            let picks = self.picks(next);
            let (dataset, rows) = (self.dataset.clone(), rows_of(&picks));
            let reading = tokio::spawn(async move { dataset.samples(&rows).await });
            self.pending.push_back((next, picks, reading));
        }
    }

    fn abort_all(&mut self) {
        for (_, _, reading) in self.pending.drain(..) {
            reading.abort();
        }
    }
}

impl Drop for Lookahead {
    fn drop(&mut self) {
        self.abort_all();
    }
}
