//! Training: the step (forward, backward, gradient exchange, optimizer), evaluation and the
//! local job loop.

pub mod dropout;
pub mod evaluate;
pub mod exchange;
pub mod run;
pub mod trainer;
