//! facetrain worker library: the tutorial's face CNN on burn, its input pipeline, the training
//! step with a gradient-exchange point, checkpoints, and the local job loop.

pub mod backend;
pub mod checkpoint;
pub mod conv_block;
pub mod data;
pub mod devices;
pub mod error;
pub mod export;
pub mod fault;
pub mod init;
pub mod memory;
pub mod model;
pub mod params;
pub mod storage;
pub mod train;

pub use error::{Error, Result};
/// The job file, shared with the coordinator and facectl.
pub use facetrain_proto::job;
pub mod agent;
