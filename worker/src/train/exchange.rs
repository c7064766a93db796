//! Where gradients are combined across workers. The trainer scales each worker's loss by its
//! share of the global batch, so the combination is a plain sum: after `all_reduce` every
//! worker holds the gradient of the global mean loss, and applies the same optimizer step.

use crate::error::Result;

pub trait GradientExchange {
    /// Whether the gradients must leave the model at all. False for a job's only member, whose
    /// gradient is already the sum: `all_reduce` is then called with an empty slice, to mark
    /// the step done, and the gradients are never copied out of burn and back.
    fn moves_gradients(&self) -> bool {
        true
    }

    /// Replaces `gradients` (this worker's, flat f32 in parameter visit order) by the sum over
    /// all workers for `step`.
    fn all_reduce(&mut self, step: u64, gradients: &mut [f32]) -> Result<()>;
}
