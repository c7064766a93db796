//! facectl: the facetrain command line as a library; the binary only parses, sets up logging
//! and the runtime, and turns the result into an exit code.
//!
//! [`cli`] lists the commands and dispatches them. Each command's module owns its flags (a
//! `clap::Args` struct) and its `run`: [`local`] (with [`local_cluster`]), [`model`] (eval and
//! predict), [`remote`] (submit, status, list, watch, cancel, resume, delete), [`curve`] (a job's training
//! curve), [`events`] (its timeline), [`workers`], [`toil`], [`dataset`], [`certs`]
//! and [`bench`](mod@bench). Commands that reach a coordinator go through [`connection`] over [`dial`].
//! [`output`] is how results are printed (text or JSON), [`progress`] the training progress on
//! stderr, and [`args`] the value parsers several commands' flags share.

pub mod args;
pub mod bench;
pub mod certs;
pub mod cli;
pub mod connection;
pub mod curve;
pub mod dataset;
pub mod dial;
pub mod events;
pub mod exit;
pub mod export;
pub mod import;
pub mod local;
pub mod local_cluster;
pub mod model;
pub mod output;
pub mod pack;
pub mod progress;
pub mod remote;
pub mod toil;
pub mod workers;
