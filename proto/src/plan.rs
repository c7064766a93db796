//! When a job evaluates, checkpoints and stops, and where its data stands after a step: one
//! decision, used by the local training loop and the coordinator alike.

use serde::{Deserialize, Serialize};

use crate::job::JobSpec;

/// Why a job stopped training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    TargetAccuracy,
    /// Validation accuracy did not improve for `[training] patience` evaluations.
    EarlyStopped,
    MaxSteps,
    Interrupted,
}

/// Early stopping's memory across evaluations: the best validation accuracy so far and how many
/// evaluations since did not improve on it by more than `min_delta`. Kept with the job (the
/// coordinator's record), so a restarted coordinator goes on counting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Patience {
    pub best: Option<f64>,
    pub evaluations_without_improvement: u32,
}

impl Patience {
    /// Takes one evaluation into account.
    fn observe(&mut self, accuracy: f64, min_delta: f64) {
        if self.best.is_none_or(|best| accuracy > best + min_delta) {
            self.best = Some(accuracy);
            self.evaluations_without_improvement = 0;
        } else {
            self.evaluations_without_improvement += 1;
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct StepPlan<'a> {
    spec: &'a JobSpec,
}

impl<'a> StepPlan<'a> {
    pub fn new(spec: &'a JobSpec) -> Self {
        Self { spec }
    }

    /// The data cursor once `step` steps are applied: every step consumes one global batch.
    pub fn cursor_at(&self, step: u64) -> u64 {
        step * self.spec.training.batch_size as u64
    }

    /// Whether `step` (counted from 1) is the job's last.
    pub fn is_last(&self, step: u64) -> bool {
        step >= self.spec.training.max_steps
    }

    /// Validate on the whole validation set after `step`: every `eval_every` steps and at the end.
    pub fn evaluate_after(&self, step: u64) -> bool {
        let every = self.spec.training.eval_every;
        self.is_last(step) || (every > 0 && step.is_multiple_of(every))
    }

    /// Write a checkpoint after `step`: every `checkpoint.every` steps and at the end, when a
    /// checkpoint folder is set.
    pub fn checkpoint_after(&self, step: u64) -> bool {
        let checkpoint = &self.spec.checkpoint;
        !checkpoint.dir.is_empty() && (self.is_last(step) || step.is_multiple_of(checkpoint.every.max(1)))
    }

    /// Why training stops after `step` with `val_accuracy` (measured after it, if it was),
    /// or `None` to go on; `patience` takes the evaluation into account.
    pub fn stop_after(&self, step: u64, val_accuracy: Option<f64>, patience: &mut Patience) -> Option<StopReason> {
        let training = &self.spec.training;
        if let Some(accuracy) = val_accuracy {
            patience.observe(accuracy, training.min_delta);
        }
        let target = training.target_accuracy;
        if val_accuracy.is_some_and(|a| target > 0.0 && a >= target) {
            Some(StopReason::TargetAccuracy)
        } else if training.patience > 0 && patience.evaluations_without_improvement >= training.patience {
            Some(StopReason::EarlyStopped)
        } else if self.is_last(step) {
            Some(StopReason::MaxSteps)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> JobSpec {
        let text = format!(
            "name = \"p\"\n[dataset]\ntrain = \"t.csv\"\nvalidate = \"v.csv\"\n[training]\nbatch_size = 10\nmax_steps = 25\neval_every = 10\ntarget_accuracy = 0.9\n{extra}"
        );
        JobSpec::parse(&text, "p").unwrap()
    }

    #[test]
    fn evaluates_and_checkpoints_on_their_intervals_and_at_the_end() {
        let spec = spec("[checkpoint]\ndir = \"c\"\nevery = 7\n");
        let plan = StepPlan::new(&spec);
        let evaluated: Vec<u64> = (1..=25).filter(|s| plan.evaluate_after(*s)).collect();
        let checkpointed: Vec<u64> = (1..=25).filter(|s| plan.checkpoint_after(*s)).collect();
        assert_eq!(evaluated, vec![10, 20, 25]);
        assert_eq!(checkpointed, vec![7, 14, 21, 25]);
        assert_eq!(plan.cursor_at(3), 30);
    }

    #[test]
    fn no_checkpoint_without_a_folder_and_stops_at_target_or_limit() {
        let spec = spec("");
        let plan = StepPlan::new(&spec);
        assert!(!(1..=25).any(|s| plan.checkpoint_after(s)));
        let mut patience = Patience::default();
        assert_eq!(plan.stop_after(10, Some(0.95), &mut patience), Some(StopReason::TargetAccuracy));
        assert_eq!(plan.stop_after(10, Some(0.5), &mut patience), None);
        assert_eq!(plan.stop_after(25, None, &mut patience), Some(StopReason::MaxSteps));
    }

    #[test]
    fn stops_early_after_patience_evaluations_without_an_improvement_beyond_min_delta() {
        let job = spec("patience = 2\nmin_delta = 0.01\n");
        let plan = StepPlan::new(&job);
        let mut patience = Patience::default();
        let mut stops = Vec::new();
        // 0.6 best; 0.605 is within min_delta (no improvement); 0.7 resets; 0.69, 0.7 then stop.
        for (step, accuracy) in [(1, 0.5), (2, 0.6), (3, 0.605), (4, 0.7), (5, -1.0), (6, 0.69), (7, 0.7)] {
            let accuracy = (accuracy >= 0.0).then_some(accuracy);
            stops.push(plan.stop_after(step, accuracy, &mut patience));
        }
        let early = Some(StopReason::EarlyStopped);
        assert_eq!(stops, [None, None, None, None, None, None, early], "{patience:?}");
        assert_eq!(patience, Patience { best: Some(0.7), evaluations_without_improvement: 2 });
        let off = spec("");
        let mut patience = Patience::default();
        assert!((1..25).all(|step| StepPlan::new(&off).stop_after(step, Some(0.5), &mut patience).is_none()));
    }
}
