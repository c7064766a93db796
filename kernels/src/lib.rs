//! CPU kernels for facetrain's hot loops, on plain slices: the face CNN's repeated block (a KxK
//! "same" convolution, ReLU and a 2x2/2 max-pool, fused, forward and backward, NCHW `f32`) and
//! the input pipeline's augmentations ([`augment`]).
//!
//! The block is computed as im2col + GEMM over tiles of samples, and the conv output never
//! exists for the whole batch: each tile's conv output is pooled while it is still in cache, and
//! only the pooled output plus one byte per pooled value (which of the 4 inputs won) is kept for
//! the backward pass. Results are deterministic: tiles are fixed by the shape, not by the thread
//! that runs them, and partial weight gradients are summed in tile order.
//!
//! burn's flex backend runs the same model through its generic 3-D conv and pooling paths; this
//! crate is the specialised path the worker plugs in as a backend extension.

pub mod augment;
mod conv_pool;
mod im2col;
mod matmul;
mod winograd;

pub use conv_pool::{BlockGradients, BlockShape, PooledBlock, backward, forward};
