//! The exchange within one round: gradients pushed (or ring all-reduces finished), the sum
//! released, reports collected into the step's outcome.

use std::sync::Arc;
use std::time::Instant;

use facetrain_proto::internal;

use super::{JobRun, Pull, PushError, Report, StepOutcome};
use crate::conditions::stragglers;
use crate::reduce::GradientSum;

impl JobRun {
    fn check_current(&self, worker: &str, step: u64, round: u64) -> Result<(), PushError> {
        if step != self.step || round != self.round {
            return Err(PushError::Stale { step, round, now_step: self.step, now_round: self.round });
        }
        if !self.is_member(worker) || self.reduced.is_some() {
            return Err(PushError::NotMember);
        }
        Ok(())
    }

    /// Ring strategy: `worker` finished the all-reduce. Returns true when every member has,
    /// which releases the step (PullGradients then answers with an empty sum).
    pub fn mark_reduced(
        &mut self,
        worker: &str,
        (step, round): (u64, u64),
        samples: internal::TrainedSamples,
        now: Instant,
    ) -> Result<bool, PushError> {
        self.check_current(worker, step, round)?;
        self.arrived(worker, now);
        self.ring_done.insert(worker.to_string());
        self.trained.insert(worker.to_string(), samples);
        if self.members.iter().all(|m| self.ring_done.contains(m)) {
            self.release(Vec::new());
            return Ok(true);
        }
        Ok(false)
    }

    /// Every member's gradient is in `sum`: it goes out, and who contributed is fixed.
    fn release(&mut self, sum: Vec<f32>) {
        self.reduced = Some(Arc::new(sum));
        self.contributors = self.members.clone();
        // Sources are consumed once every member has loaded and computed this round.
        self.sources.clear();
    }

    /// Coordinator strategy: one chunk of `worker`'s gradient, already decoded. Returns true
    /// when it completed the sum, which is then released.
    pub fn add_chunk(
        &mut self,
        worker: &str,
        chunk: &internal::GradientChunk,
        values: &[f32],
        now: Instant,
    ) -> Result<bool, PushError> {
        self.check_current(worker, chunk.step, chunk.round)?;
        self.arrived(worker, now);
        if chunk.offset == 0 {
            self.trained.insert(worker.to_string(), chunk.samples.clone().unwrap_or_default());
        }
        let members = &self.members;
        let sum = self.sum.get_or_insert_with(|| GradientSum::new(chunk.total as usize, members));
        sum.add_values(worker, chunk.total, chunk.offset, values)?;
        match self.sum.take_if(|sum| sum.is_complete()) {
            Some(sum) => {
                self.release(sum.into_sum());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn arrived(&mut self, worker: &str, now: Instant) {
        let seconds = now.saturating_duration_since(self.round_started).as_secs_f64();
        self.arrivals.entry(worker.to_string()).or_insert(seconds);
    }

    pub fn pull(&self, step: u64, round: u64) -> Pull {
        if step != self.step || round != self.round {
            return Pull::Aborted;
        }
        match &self.reduced {
            Some(sum) => Pull::Ready(sum.clone()),
            None => Pull::Pending,
        }
    }

    /// Whether the current round's sum was released (members may have applied it).
    pub fn released(&self) -> bool {
        self.reduced.is_some()
    }

    /// Records `worker`'s report of step `step + 1`. Returns the outcome once all members reported.
    pub fn report(
        &mut self,
        worker: &str,
        step: u64,
        round: u64,
        report: Report,
        now: Instant,
    ) -> Result<Option<StepOutcome>, PushError> {
        if step != self.step + 1 || round != self.round || self.reduced.is_none() {
            return Err(PushError::Stale { step, round, now_step: self.step, now_round: self.round });
        }
        if !self.is_member(worker) {
            return Err(PushError::NotMember);
        }
        self.reports.insert(worker.to_string(), report);
        Ok(self.outcome_if_complete(now))
    }

    /// The outcome once every member reported (also when a lost member was the last one missing).
    pub fn outcome_if_complete(&self, now: Instant) -> Option<StepOutcome> {
        (self.reduced.is_some()
            && !self.members.is_empty()
            && self.members.iter().all(|m| self.reports.contains_key(m)))
        .then(|| self.outcome(now))
    }

    fn outcome(&self, now: Instant) -> StepOutcome {
        let reports: Vec<(String, Report)> =
            self.members.iter().filter_map(|m| self.reports.get(m).map(|r| (m.clone(), r.clone()))).collect();
        let samples: u64 = reports.iter().map(|(_, r)| r.samples).sum();
        let loss_sum: f64 = reports.iter().map(|(_, r)| r.loss_sum).sum();
        let correct: u64 = reports.iter().map(|(_, r)| r.correct).sum();
        let first = reports.first().map(|(_, r)| r.checksum);
        let diverged = reports.iter().any(|(_, r)| Some(r.checksum) != first);
        let times: Vec<(String, f64)> = reports.iter().map(|(w, r)| (w.clone(), r.compute_seconds)).collect();
        let arrivals: Vec<(String, f64)> =
            self.members.iter().filter_map(|m| self.arrivals.get(m).map(|s| (m.clone(), *s))).collect();
        // Ring members all finish the all-reduce together (after the slowest), so only gradients
        // pushed to the coordinator tell who was late; rings fall back to reported compute time.
        let by_arrival = arrivals.len() == self.members.len() && self.ring_done.is_empty();
        let stragglers = stragglers(if by_arrival { &arrivals } else { &times });
        StepOutcome {
            step: self.step + 1,
            loss: if samples == 0 { 0.0 } else { loss_sum / samples as f64 },
            train_accuracy: if samples == 0 { 0.0 } else { correct as f64 / samples as f64 },
            samples,
            val_accuracy: validation_accuracy(&reports),
            seconds: now.saturating_duration_since(self.round_started).as_secs_f64(),
            diverged,
            stragglers,
            reports,
            trained: self
                .contributors
                .iter()
                .map(|w| (w.clone(), self.trained.get(w).cloned().unwrap_or_default()))
                .collect(),
        }
    }
}

/// The job's validation accuracy from the members' reports: the summed counts of their shares,
/// or (from workers that score the whole set) the first accuracy reported.
fn validation_accuracy(reports: &[(String, Report)]) -> Option<f64> {
    let (correct, samples) = reports.iter().fold((0, 0), |(c, n), (_, r)| (c + r.val_counts.0, n + r.val_counts.1));
    if samples > 0 {
        return Some(correct as f64 / samples as f64);
    }
    reports.iter().find_map(|(_, r)| r.val_accuracy)
}
