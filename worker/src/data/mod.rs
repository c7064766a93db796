//! The input pipeline: CSV -> object store -> decode -> augment -> batch.

pub mod augment;
pub mod batch;
pub mod cache;
pub mod csv;
pub mod dataset;
pub mod image;
pub mod import;
pub mod lines;
pub mod lookahead;
pub mod pack;
pub mod reader;
pub mod shard;
pub mod span;
pub mod synth;
