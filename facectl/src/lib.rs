//! facectl: the facetrain command line as a library. `cli` is the grammar and sends each
//! command to the module that owns its flags and its `run`; the binary only parses, sets up
//! logging and the runtime, and turns the result into an exit code.

pub mod args;
pub mod bench;
pub mod certs;
pub mod cli;
pub mod connection;
pub mod dataset;
pub mod dial;
pub mod local;
pub mod local_cluster;
pub mod model;
pub mod output;
pub mod progress;
pub mod remote;
pub mod toil;
