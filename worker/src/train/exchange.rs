//! Where gradients are combined across workers. The trainer scales each worker's loss by its
//! share of the global batch, so the combination is a plain sum: after `all_reduce` every
//! worker holds the gradient of the global mean loss, and applies the same optimizer step.

use crate::error::Result;

pub trait GradientExchange {
    /// Replaces `gradients` (this worker's, flat f32 in parameter visit order) by the sum over
    /// all workers for `step`.
    fn all_reduce(&mut self, step: u64, gradients: &mut [f32]) -> Result<()>;
}
